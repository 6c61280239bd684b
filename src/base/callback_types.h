// PyREBox callback types, with PyREBox's numbering (CallbackManager.*_CB):
// scripts and triggers written for PyREBox use these values.
#pragma once

#include <optional>
#include <string_view>

#include "generated/event_kinds.inc"

namespace pyrebox {

// The kinds and their numbers come from the event-kind table
// (python/pyrebox/event_kinds.py), generated into the build directory.
enum class CallbackType : int {
#define PYREBOX_ENUM_ROW(kind, number, name, origin) kind = number,
    PYREBOX_EVENT_KINDS(PYREBOX_ENUM_ROW)
#undef PYREBOX_ENUM_ROW
};

namespace detail {
#define PYREBOX_NUMBER_ROW(kind, number, name, origin) number,
inline constexpr int kCallbackNumbers[] = {PYREBOX_EVENT_KINDS(PYREBOX_NUMBER_ROW)};
#undef PYREBOX_NUMBER_ROW
constexpr int min_number() {
    int m = kCallbackNumbers[0];
    for (int n : kCallbackNumbers) m = n < m ? n : m;
    return m;
}
constexpr int max_number() {
    int m = kCallbackNumbers[0];
    for (int n : kCallbackNumbers) m = n > m ? n : m;
    return m;
}
}  // namespace detail

inline constexpr int kFirstCallbackType = detail::min_number();
inline constexpr int kLastCallbackType = detail::max_number();
inline constexpr int kCallbackTypeSlots = kLastCallbackType + 1;
static_assert(sizeof(detail::kCallbackNumbers) / sizeof(int) ==
                  kLastCallbackType - kFirstCallbackType + 1,
              "callback type numbers are contiguous (callback_type_from_int relies on it)");

// Where events of a type come from (the table's origin column); Unknown for
// a value that is no callback type.
enum class CallbackOrigin { Engine, Process, Device, Unknown };
constexpr CallbackOrigin callback_origin(CallbackType type) {
    switch (type) {
#define PYREBOX_ORIGIN_ROW(kind, number, name, origin) \
    case CallbackType::kind:                           \
        return CallbackOrigin::origin;
        PYREBOX_EVENT_KINDS(PYREBOX_ORIGIN_ROW)
#undef PYREBOX_ORIGIN_ROW
    }
    return CallbackOrigin::Unknown;
}

// "BLOCK_BEGIN_CB", ... as scripts spell them.
std::string_view callback_type_name(CallbackType type);
std::optional<CallbackType> callback_type_from_int(int value);

// Types the execution engine delivers (the rest come from introspection and
// devices).
constexpr bool is_engine_type(CallbackType type) {
    return callback_origin(type) == CallbackOrigin::Engine;
}
// Types Linux introspection delivers (CREATEPROC, REMOVEPROC, LOADMODULE,
// REMOVEMODULE).
constexpr bool is_process_event_type(CallbackType type) {
    return callback_origin(type) == CallbackOrigin::Process;
}
// Types delivered from devices: KEYSTROKE (the keyboard bytes the guest
// reads) and NIC_SEND / NIC_REC (the frames of the observed NIC).
constexpr bool is_device_type(CallbackType type) {
    return callback_origin(type) == CallbackOrigin::Device;
}

}  // namespace pyrebox
