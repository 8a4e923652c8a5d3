// SPDX-License-Identifier: Apache-2.0
// Move-only owners for cnats handles: every handle kvelect creates is released by exactly one
// destructor, which never throws.
#pragma once

#include <nats/nats.h>

#include <memory>

namespace kvelect::detail {

template <typename T, void (*Destroy)(T*)>
struct HandleDeleter {
  void operator()(T* handle) const noexcept {
    if (handle != nullptr)
      Destroy(handle);
  }
};

template <typename T, void (*Destroy)(T*)>
using Handle = std::unique_ptr<T, HandleDeleter<T, Destroy>>;

using OptionsHandle = Handle<natsOptions, natsOptions_Destroy>;
using ConnectionHandle = Handle<natsConnection, natsConnection_Destroy>;
using JetStreamHandle = Handle<jsCtx, jsCtx_Destroy>;
using KvHandle = Handle<kvStore, kvStore_Destroy>;
using EntryHandle = Handle<kvEntry, kvEntry_Destroy>;
using StatusHandle = Handle<kvStatus, kvStatus_Destroy>;
using WatcherHandle = Handle<kvWatcher, kvWatcher_Destroy>;
using StreamInfoHandle = Handle<jsStreamInfo, jsStreamInfo_Destroy>;
using MsgHandle = Handle<natsMsg, natsMsg_Destroy>;
using SubscriptionHandle = Handle<natsSubscription, natsSubscription_Destroy>;

} // namespace kvelect::detail
