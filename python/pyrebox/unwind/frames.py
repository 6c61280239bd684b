"""What a backtrace returns: Frame objects, innermost first, in a Backtrace
(a list) that also says why the walk stopped."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# How a frame was found.
REGS = "regs"   # from registers: the vCPU's, or the user registers the kernel saved
CFI = "cfi"     # the callee's DWARF call-frame information (.eh_frame)
FP = "fp"       # the callee's frame-pointer (RBP) chain
SCAN = "scan"   # a stack word that points just after a call: a guess


def location(module: str | None, symbol: str | None, offset: int | None, addr: int) -> str:
    """WinDbg's text for an address: module!symbol+0xoff, module+0xoff when
    only the module is known, else the address in hex."""
    if module and symbol:
        return f"{module}!{symbol}+{offset:#x}" if offset else f"{module}!{symbol}"
    if module and offset is not None:
        return f"{module}+{offset:#x}"
    return f"{addr:#x}"


@dataclass
class Frame:
    pc: int
    sp: int
    how: str
    kernel: bool = False
    module: str | None = None
    symbol: str | None = None
    # From the symbol's start (or the module's base when there is no symbol).
    offset: int | None = None

    @property
    def text(self) -> str:
        return location(self.module, self.symbol, self.offset, self.pc)

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.text}

    def __getitem__(self, key: str):
        """frame["pc"], as for a dict."""
        return self.as_dict()[key]


class Backtrace(list):
    """The frames, innermost first; `stop` says why the walk ended there
    (e.g. "the outermost frame: its CFI marks the return address undefined")."""

    def __init__(self, frames=(), stop: str = ""):
        super().__init__(frames)
        self.stop = stop
