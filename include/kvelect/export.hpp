// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Symbol export macro: the library is built with hidden visibility, and only what is
/// marked KVELECT_API is part of its ABI.
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define KVELECT_API __attribute__((visibility("default")))
#else
#define KVELECT_API
#endif
