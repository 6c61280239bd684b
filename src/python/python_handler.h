// A callback whose handler is Python: the adapter built by pyrebox.callbacks
// for the script's function, called with the event's raw values.
#pragma once

#include <pybind11/pybind11.h>

#include "engine/callback_registry.h"

namespace pyrebox::python {

class PythonHandler final : public CallbackHandler {
public:
    // Thread: any, with the GIL held.
    explicit PythonHandler(pybind11::object adapter) : adapter_(std::move(adapter)) {}
    // Thread: any; takes the GIL to drop the adapter.
    ~PythonHandler() override;

    // Thread: the event's vCPU thread. Positional arguments by type:
    //   BLOCK_BEGIN  (cpu_index, pc, size, icount)
    //   BLOCK_END    (cpu_index, tb_pc, tb_size, tb_icount, cur_pc, next_pc)
    //   INSN_*       (cpu_index, pc)              INSN_END: (cpu_index, pc, next_pc)
    //   MEM_READ     (cpu_index, vaddr, size, paddr, pc)
    //   MEM_WRITE    (cpu_index, vaddr, size, paddr, data, pc)
    //   OPCODE_RANGE (cpu_index, cur_pc, next_pc, opcode)
    //   TLB_EXEC     (cpu_index, vaddr)
    //   CONTEXTCHANGE (cpu_index, old_pgd, new_pgd)
    //   KEYSTROKE    (keycode)
    //   NIC_SEND/REC (frame: bytes)
    // The adapter reports the script's exceptions itself; anything escaping
    // it is printed here and never reaches QEMU.
    void deliver(const Event& event) override;

private:
    pybind11::object adapter_;
};

}  // namespace pyrebox::python
