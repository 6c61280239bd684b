// PyREBox callback types, with PyREBox's numbering (CallbackManager.*_CB):
// scripts and triggers written for PyREBox use these values.
#pragma once

#include <optional>
#include <string_view>

namespace pyrebox {

enum class CallbackType : int {
    BlockBegin = 2,
    BlockEnd = 3,
    InsnBegin = 4,
    InsnEnd = 5,
    MemRead = 6,
    MemWrite = 7,
    Keystroke = 8,
    NicRec = 9,
    NicSend = 10,
    OpcodeRange = 11,
    TlbExec = 12,
    CreateProc = 13,
    RemoveProc = 14,
    ContextChange = 15,
    LoadModule = 16,
    RemoveModule = 17,
};

inline constexpr int kFirstCallbackType = 2;
inline constexpr int kLastCallbackType = 17;
inline constexpr int kCallbackTypeSlots = kLastCallbackType + 1;

// "BLOCK_BEGIN_CB", ... as scripts spell them.
std::string_view callback_type_name(CallbackType type);
std::optional<CallbackType> callback_type_from_int(int value);

// Types the execution engine delivers (the rest come from introspection and
// devices).
bool is_engine_type(CallbackType type);
// Types Linux introspection delivers (CREATEPROC, REMOVEPROC, LOADMODULE,
// REMOVEMODULE).
inline bool is_process_event_type(CallbackType type) {
    return type == CallbackType::CreateProc || type == CallbackType::RemoveProc ||
           type == CallbackType::LoadModule || type == CallbackType::RemoveModule;
}

// Types delivered from devices: KEYSTROKE (the keyboard bytes the guest
// reads) and NIC_SEND / NIC_REC (the frames of the observed NIC).
bool is_device_type(CallbackType type);

}  // namespace pyrebox
