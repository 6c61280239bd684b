#include "base/callback_types.h"

namespace pyrebox {

std::string_view callback_type_name(CallbackType type) {
    switch (type) {
        case CallbackType::BlockBegin: return "BLOCK_BEGIN_CB";
        case CallbackType::BlockEnd: return "BLOCK_END_CB";
        case CallbackType::InsnBegin: return "INSN_BEGIN_CB";
        case CallbackType::InsnEnd: return "INSN_END_CB";
        case CallbackType::MemRead: return "MEM_READ_CB";
        case CallbackType::MemWrite: return "MEM_WRITE_CB";
        case CallbackType::Keystroke: return "KEYSTROKE_CB";
        case CallbackType::NicRec: return "NIC_REC_CB";
        case CallbackType::NicSend: return "NIC_SEND_CB";
        case CallbackType::OpcodeRange: return "OPCODE_RANGE_CB";
        case CallbackType::TlbExec: return "TLB_EXEC_CB";
        case CallbackType::CreateProc: return "CREATEPROC_CB";
        case CallbackType::RemoveProc: return "REMOVEPROC_CB";
        case CallbackType::ContextChange: return "CONTEXTCHANGE_CB";
        case CallbackType::LoadModule: return "LOADMODULE_CB";
        case CallbackType::RemoveModule: return "REMOVEMODULE_CB";
    }
    return "UNKNOWN_CB";
}

std::optional<CallbackType> callback_type_from_int(int value) {
    if (value < kFirstCallbackType || value > kLastCallbackType) {
        return std::nullopt;
    }
    return static_cast<CallbackType>(value);
}

bool is_engine_type(CallbackType type) {
    switch (type) {
        case CallbackType::BlockBegin:
        case CallbackType::BlockEnd:
        case CallbackType::InsnBegin:
        case CallbackType::InsnEnd:
        case CallbackType::MemRead:
        case CallbackType::MemWrite:
        case CallbackType::OpcodeRange:
        case CallbackType::TlbExec:
        case CallbackType::ContextChange:
            return true;
        default:
            return false;
    }
}


bool is_device_type(CallbackType type) {
    return type == CallbackType::Keystroke || type == CallbackType::NicSend ||
           type == CallbackType::NicRec;
}

}  // namespace pyrebox
