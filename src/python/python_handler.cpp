#include "python/python_handler.h"

#include "python/gil.h"
#include "python/runtime.h"

namespace py = pybind11;

namespace pyrebox::python {

PythonHandler::~PythonHandler() {
    GilScope gil;
    adapter_ = py::object();
}

void PythonHandler::deliver(const Event& e) {
    guarded("internal error delivering an event", [&] {
        const py::handle f = adapter_;
        switch (e.type) {
            case CallbackType::BlockBegin:
                f(e.cpu_index, e.tb.pc, e.tb.size, e.tb.icount);
                break;
            case CallbackType::BlockEnd:
                f(e.cpu_index, e.tb.pc, e.tb.size, e.tb.icount, e.pc, e.next_pc);
                break;
            case CallbackType::InsnBegin:
                f(e.cpu_index, e.pc);
                break;
            case CallbackType::InsnEnd:
                f(e.cpu_index, e.pc, e.next_pc);
                break;
            case CallbackType::MemRead:
                f(e.cpu_index, e.vaddr, e.size, e.paddr, e.pc);
                break;
            case CallbackType::MemWrite:
                if (e.size > 8) {
                    f(e.cpu_index, e.vaddr, e.size, e.paddr,
                      (py::int_(e.data_high).attr("__lshift__")(64)).attr("__or__")(e.data), e.pc);
                } else {
                    f(e.cpu_index, e.vaddr, e.size, e.paddr, e.data, e.pc);
                }
                break;
            case CallbackType::OpcodeRange:
                f(e.cpu_index, e.pc, e.next_pc, e.opcode);
                break;
            case CallbackType::TlbExec:
                f(e.cpu_index, e.vaddr);
                break;
            case CallbackType::ContextChange:
                f(e.cpu_index, e.old_pgd, e.new_pgd);
                break;
            case CallbackType::CreateProc:
            case CallbackType::RemoveProc:
                f(e.pid, e.pgd, py::str(e.name ? e.name : ""));
                break;
            case CallbackType::LoadModule:
            case CallbackType::RemoveModule:
                f(e.pid, e.pgd, e.vaddr, e.size, py::str(e.name ? e.name : ""),
                  py::str(e.fullname ? e.fullname : ""));
                break;
            case CallbackType::Keystroke:
                f(e.data);
                break;
            case CallbackType::NicSend:
            case CallbackType::NicRec:
                f(py::bytes(reinterpret_cast<const char*>(e.buffer), e.size));
                break;
            default:
                break;
        }
    });
}

}  // namespace pyrebox::python
