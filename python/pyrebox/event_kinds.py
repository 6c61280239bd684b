"""The event kinds: one row per callback type, the only place an event's
schema is written.

Everything else is generated from or checked against this table:
- the C++ callback type enum, names and classes, the delivery of an event
  to Python and the trigger parameters (tools/gen_event_kinds.py writes them
  at build time into the build directory);
- the adapters that turn an event into a script's arguments
  (pyrebox.callbacks);
- the callback table of docs/scripts.md and the numbers of the trigger SDK's
  header (a test fails when they disagree).

Adding an event kind is one row here plus the code that produces the event.

A field is what a script receives. Its `event` names the member of the C++
`pyrebox::Event` it is read from (`tb` is the block's (pc, size, icount);
`cpu` is built at the program counter `event` names, or with none); `zero`
fields hold 0 because what they stand for (positions in PyREBox's ne2000
memory) is not observable. `after` marks values read after the event
happened. Old-style callbacks receive the positional fields in order;
new-style callbacks one dict with every field under its name and aliases.

A trigger member is what a native trigger reads in its
`callback_params_t.<params>` struct: the Event member, `cpu` (QEMU's vCPU
handle), `tb` (the block handle), `buffer` (the frame) or `name` (the
NUL-terminated name, valid while the trigger runs).

This module holds data only and imports nothing of the project: the build
reads it without the package.
"""

from __future__ import annotations

import dataclasses

# Field types, by how a value reaches Python.
INT = "int"          # an integer member of the Event
STORED = "stored"    # the value stored (data, with data_high for 128-bit stores)
STR = "str"          # a NUL-terminated string member (name, fullname)
BYTES = "bytes"      # the frame: buffer with size bytes
CPU = "cpu"          # the lazy register object (pyrebox.cpu.Cpu)
TB = "tb"            # (pc, size, icount) of the translation block
ZERO = "zero"        # always 0 (not observable)
SIGNED = "signed"    # an integer member read as a signed 64-bit value
DERIVED = "derived"  # computed in Python from Event members: `event` names the
                     # derivation (pyrebox.callbacks.DERIVATIONS), `inputs` its members
ARGS = "args"        # the six argument registers of a system call, a tuple

# Where events of a kind come from.
ENGINE = "engine"    # the execution engine (translation and execution)
PROCESS = "process"  # Linux introspection (the kernel's process and mapping hooks)
DEVICE = "device"    # devices (keyboard, NIC)


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    type: str
    event: str | None = None      # the Event member (for CPU: the pc it is built at)
    positional: bool = True       # part of the old-style argument list
    aliases: tuple[str, ...] = ()  # further new-style dict keys with the same value
    after: bool = False           # read after the event (the state it left)
    inputs: tuple[str, ...] = ()  # DERIVED: the Event members the derivation takes
    lazy: bool = False            # DERIVED: the value reads the guest when first used; one
                                  # the callback keeps is read (freeze()) before the event ends
    none_when: str | None = None  # DERIVED: a condition on the inputs under which the value
                                  # is None: the adapter then does not call the derivation


@dataclasses.dataclass(frozen=True)
class Kind:
    name: str       # as scripts spell it: CallbackManager.<name>
    number: int     # PyREBox's numbering
    enum: str       # pyrebox::CallbackType::<enum>
    origin: str     # ENGINE, PROCESS or DEVICE
    fields: tuple[Field, ...]
    when: str       # docs/scripts.md: when the callback is called (Markdown)
    # The trigger SDK's params struct member, and (its member, the Event
    # member or cpu/tb/buffer) pairs; None: triggers cannot attach.
    trigger_params: str | None = None
    trigger_fields: tuple[tuple[str, str], ...] = ()


_cpu_index = Field("cpu_index", INT, "cpu_index")
# A system call: where, which (the kernel's name from its own table; None
# when it names none) and its argument registers; the entry path and the
# system-call instruction.
_syscall_thread = (Field("pid", INT, "pid"), Field("tid", INT, "tid"))
_syscall_call = (Field("pgd", INT, "pgd"), Field("number", INT, "number"),
                 Field("name", DERIVED, "syscall_name", inputs=("pgd", "number", "syscall_path")))
# The decoded arguments (pyrebox.syscall_args.Arguments): read from the guest
# when first used during the callback, or when the callback keeps them.
_syscall_args = Field("args", DERIVED, "syscall_args", lazy=True,
                      inputs=("pgd", "number", "syscall_path", "args"))
_syscall_args_ret = Field("args", DERIVED, "syscall_args_ret", lazy=True, after=True,
                          inputs=("pgd", "number", "syscall_path", "args", "retval"))
_syscall_raw = Field("raw", ARGS, "args")
_syscall_site = (Field("path", INT, "syscall_path", positional=False),
                 Field("pc", INT, "pc", positional=False))

_SYSCALL_MEMBERS = (("cpu_index", "cpu_index"), ("cpu", "cpu"), ("pid", "pid"), ("tid", "tid"),
                    ("pgd", "pgd"), ("number", "number"),
                    *((f"args[{i}]", f"args[{i}]") for i in range(6)),
                    ("pc", "pc"), ("path", "syscall_path"))

KINDS: tuple[Kind, ...] = (
    Kind("BLOCK_BEGIN_CB", 2, "BlockBegin", ENGINE,
         (_cpu_index, Field("cpu", CPU, "tb.pc"), Field("tb", TB, "tb")),
         "a translation block starts in a monitored process; with `addr` (and optionally "
         "`pgd`): every time the instruction at `addr` executes, in any process (or in `pgd`)",
         "block_begin_params", (("cpu_index", "cpu_index"), ("cpu", "cpu"), ("tb", "tb"))),
    Kind("BLOCK_END_CB", 3, "BlockEnd", ENGINE,
         (_cpu_index, Field("cpu", CPU, "next_pc", after=True), Field("tb", TB, "tb"),
          Field("cur_pc", INT, "pc"), Field("next_pc", INT, "next_pc", after=True)),
         "after a block of a monitored process: `cur_pc` is its last instruction, `next_pc` "
         "the block that really ran next; `cpu` is the state after the block",
         "block_end_params", (("cpu_index", "cpu_index"), ("cpu", "cpu"), ("tb", "tb"),
                              ("cur_pc", "pc"), ("next_pc", "next_pc"))),
    Kind("INSN_BEGIN_CB", 4, "InsnBegin", ENGINE,
         (_cpu_index, Field("cpu", CPU, "pc")),
         "before each instruction of a monitored process; with `addr`/`pgd` as for blocks",
         "insn_begin_params", (("cpu_index", "cpu_index"), ("cpu", "cpu"))),
    Kind("INSN_END_CB", 5, "InsnEnd", ENGINE,
         (_cpu_index, Field("cpu", CPU, "next_pc", after=True)),
         "after each instruction of a monitored process (`cpu` is the state after it)",
         "insn_end_params", (("cpu_index", "cpu_index"), ("cpu", "cpu"))),
    Kind("MEM_READ_CB", 6, "MemRead", ENGINE,
         (_cpu_index, Field("vaddr", INT, "vaddr"), Field("size", INT, "size"),
          Field("haddr", INT, "paddr")),
         "after a load in a monitored process; `haddr` is the physical address (`2**64-1` "
         "for I/O)",
         "mem_read_params", (("cpu_index", "cpu_index"), ("vaddr", "vaddr"),
                             ("haddr", "paddr"), ("size", "size"), ("cpu", "cpu"))),
    Kind("MEM_WRITE_CB", 7, "MemWrite", ENGINE,
         (_cpu_index, Field("vaddr", INT, "vaddr"), Field("size", INT, "size"),
          Field("haddr", INT, "paddr"), Field("data", STORED, "data")),
         "after a store in a monitored process; `data` is the value written",
         "mem_write_params", (("cpu_index", "cpu_index"), ("vaddr", "vaddr"),
                              ("haddr", "paddr"), ("size", "size"), ("data", "data"),
                              ("cpu", "cpu"))),
    Kind("OPCODE_RANGE_CB", 11, "OpcodeRange", ENGINE,
         (_cpu_index, Field("cpu", CPU, "next_pc", after=True), Field("cur_pc", INT, "pc"),
          Field("next_pc", INT, "next_pc", after=True)),
         "after an instruction whose opcode is in `[start_opcode, end_opcode]`, in a monitored "
         "process. Opcodes: one-byte `0x00-0xFF`, `0F xx` as `0x1xx` (`cpuid` is `0x1A2`), "
         "`0F 38 xx` as `0x2xx`, `0F 3A xx` as `0x3xx`; `next_pc` is where execution continued",
         "opcode_range_params", (("cpu_index", "cpu_index"), ("cpu", "cpu"), ("cur_pc", "pc"),
                                 ("next_pc", "next_pc"), ("opcode", "opcode"))),
    Kind("TLB_EXEC_CB", 12, "TlbExec", ENGINE,
         (Field("cpu", CPU), Field("vaddr", INT, "vaddr")),
         "any process (as in PyREBox; `monitored_only=True`: monitored ones; `pgd=`: that "
         "one) executes code in a page for the first time since its address "
         "space was last loaded with a TLB flush (where a real TLB misses on instruction "
         "fetch; PCID and TLB capacity are not modelled); `vaddr` is the block's address",
         "tlb_exec_params", (("cpu", "cpu"), ("vaddr", "vaddr"))),
    Kind("CONTEXTCHANGE_CB", 15, "ContextChange", ENGINE,
         (Field("old_pgd", INT, "old_pgd"), Field("new_pgd", INT, "new_pgd")),
         "the vCPU switches to another address space (any process)",
         "vmi_context_change_params", (("old_pgd", "old_pgd"), ("new_pgd", "new_pgd"))),
    Kind("CREATEPROC_CB", 13, "CreateProc", PROCESS,
         (Field("pid", INT, "pid"), Field("pgd", INT, "pgd"), Field("name", STR, "name")),
         "a process is created, or execs (see below); any process",
         "vmi_create_proc_params", (("pid", "pid"), ("pgd", "pgd"), ("name", "name"))),
    Kind("REMOVEPROC_CB", 14, "RemoveProc", PROCESS,
         (Field("pid", INT, "pid"), Field("pgd", INT, "pgd"), Field("name", STR, "name")),
         "a process leaves the process list, or execs",
         "vmi_remove_proc_params", (("pid", "pid"), ("pgd", "pgd"), ("name", "name"))),
    Kind("LOADMODULE_CB", 16, "LoadModule", PROCESS,
         (Field("pid", INT, "pid"), Field("pgd", INT, "pgd"), Field("base", INT, "vaddr"),
          Field("size", INT, "size"), Field("name", STR, "name"),
          Field("fullname", STR, "fullname")),
         "a file is first mapped in an address space (`pgd=` restricts to one; `pgd=0`: "
         "kernel modules)"),
    Kind("REMOVEMODULE_CB", 17, "RemoveModule", PROCESS,
         (Field("pid", INT, "pid"), Field("pgd", INT, "pgd"), Field("base", INT, "vaddr"),
          Field("size", INT, "size"), Field("name", STR, "name"),
          Field("fullname", STR, "fullname")),
         "the last mapping of a file is about to be unmapped (`pgd=` as above)"),
    Kind("SYSCALL_CB", 18, "Syscall", ENGINE,
         (_cpu_index, Field("cpu", CPU, "pc"), *_syscall_thread, *_syscall_call, _syscall_args,
          _syscall_raw, *_syscall_site),
         "a thread of a monitored process (`pgd=`: of that process) enters a system call "
         "(`path`: 1 `syscall`, 2 `int 0x80`, 3 `sysenter`, 4 `syscall` from 32-bit code); "
         "`number` as the entry path numbers it, `raw` its six argument "
         "registers; `name` the kernel's own name of it; `pc` the system-call instruction. vDSO calls (`clock_gettime`, ...) "
         "enter no system call",
         "syscall_params", _SYSCALL_MEMBERS),
    Kind("SYSCALL_RET_CB", 19, "SyscallRet", ENGINE,
         (_cpu_index, Field("cpu", CPU, "next_pc", after=True), *_syscall_thread, *_syscall_call,
          _syscall_args_ret, _syscall_raw, Field("retval", SIGNED, "retval", after=True),
          Field("error", DERIVED, "syscall_error", inputs=("retval",), after=True,
                none_when="retval >= 0"),
          Field("child", INT, "child", positional=False, after=True), *_syscall_site),
         "that system call returns in that thread (paired by address space, stack pointer "
         "and return address, also across context switches); `retval` as the kernel returns "
         "it (`-2` for ENOENT); `child` is 1 for the child's return of fork/vfork/clone; "
         "a successful execve and exit never return",
         "syscall_ret_params", (*_SYSCALL_MEMBERS, ("retval", "retval"), ("child", "child"))),
    Kind("KEYSTROKE_CB", 8, "Keystroke", DEVICE,
         (Field("keycode", INT, "data"),),
         "the guest reads a keyboard byte from the PS/2 controller, in any process (see "
         "[Keyboard](#keyboard-keystroke_cb))",
         "keystroke_params", (("keycode", "data"),)),
    Kind("NIC_SEND_CB", 10, "NicSend", DEVICE,
         (Field("addr", ZERO), Field("size", INT, "size"),
          Field("buf", BYTES, "buffer", aliases=("buff",))),
         "the guest sends a frame on the observed NIC (`buf`: the whole Ethernet frame, "
         "`bytes`; `addr` is 0)",
         "nic_send_params", (("buf", "buffer"), ("size", "size"))),
    Kind("NIC_REC_CB", 9, "NicRec", DEVICE,
         (Field("buf", BYTES, "buffer", aliases=("buff",)), Field("size", INT, "size"),
          Field("cur_pos", ZERO, aliases=("curr",)), Field("start", ZERO), Field("stop", ZERO)),
         "a frame arrives for the guest on the observed NIC; `cur_pos`, `start`, `stop` are 0",
         "nic_rec_params", (("buf", "buffer"), ("size", "size"))),
)

BY_NUMBER: dict[int, Kind] = {kind.number: kind for kind in KINDS}
BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}


def raw_arguments(kind: Kind) -> tuple[str, ...]:
    """The Event members the engine passes to the kind's adapter, in order:
    each member the fields read, once, in the order of first use (a CPU field
    also needs cpu_index; a TB field is tb.pc, tb.size, tb.icount)."""
    members: list[str] = []

    def use(member: str) -> None:
        if member not in members:
            members.append(member)

    for field in kind.fields:
        if field.type == CPU:
            use("cpu_index")
            if field.event:
                use(field.event)
        elif field.type == TB:
            for member in ("tb.pc", "tb.size", "tb.icount"):
                use(member)
        elif field.type == DERIVED:
            for member in field.inputs:
                use(member)
        elif field.type != ZERO:
            use(field.event)
    return tuple(members)


def raw_type(kind: Kind, member: str) -> str:
    """How the raw member `member` of `kind` crosses to Python: INT, STORED,
    STR, BYTES, SIGNED or ARGS."""
    for field in kind.fields:
        if field.event == member and field.type in (STORED, STR, BYTES, SIGNED, ARGS):
            return field.type
    return INT
