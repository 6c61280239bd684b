#include "base/callback_types.h"

namespace pyrebox {

std::string_view callback_type_name(CallbackType type) {
    switch (type) {
#define PYREBOX_NAME_ROW(kind, number, name, origin) \
    case CallbackType::kind:                         \
        return name;
        PYREBOX_EVENT_KINDS(PYREBOX_NAME_ROW)
#undef PYREBOX_NAME_ROW
    }
    return "UNKNOWN_CB";
}

std::optional<CallbackType> callback_type_from_int(int value) {
    if (value < kFirstCallbackType || value > kLastCallbackType) {
        return std::nullopt;
    }
    return static_cast<CallbackType>(value);
}

}  // namespace pyrebox
