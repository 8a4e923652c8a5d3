// SPDX-License-Identifier: Apache-2.0
/// @file
/// @brief Everything of kvelect's public API in one include.
#pragma once

#include <kvelect/backoff.hpp>
#include <kvelect/election.hpp>
#include <kvelect/error.hpp>
#include <kvelect/executor.hpp>
#include <kvelect/log.hpp>
#include <kvelect/nats.hpp>
#include <kvelect/options.hpp>
#include <kvelect/state.hpp>
#include <kvelect/version.hpp>
