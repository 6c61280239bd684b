"""Which system calls a trace shows: strace's -e trace= expression."""

from __future__ import annotations

# strace's classes (-e trace=%file...): calls taking a path are found from
# the kernel's own argument names; network and process calls by name.
PATH_ARGS = ("filename", "pathname", "path", "oldname", "newname", "name", "specialfile",
             "library", "dir_name", "dev_name", "oldpath", "newpath")
CLASSES = {
    "network": {"socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
                "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
                "getsockname", "getpeername", "setsockopt", "getsockopt", "shutdown"},
    "process": {"clone", "clone3", "fork", "vfork", "execve", "execveat", "exit", "exit_group",
                "wait4", "waitid", "kill", "tkill", "tgkill", "rt_sigqueueinfo",
                "rt_tgsigqueueinfo", "pidfd_open", "pidfd_send_signal", "unshare", "setns"},
}


class Filter:
    """strace's -e trace=: a comma list of call names and classes (%file,
    %network, %process; the % is optional), optionally negated with '!'.
    Empty: every call."""

    def __init__(self, text: str):
        text = text.strip()
        if text.startswith("trace="):
            text = text[len("trace="):]
        self.negate = text.startswith("!")
        items = [t.strip() for t in text.lstrip("!").split(",") if t.strip()]
        known = (*CLASSES, "file")
        for item in items:
            if item.startswith("%") and item[1:] not in known:
                raise ValueError(f"unknown class {item!r} in the trace filter "
                                 f"(classes: {', '.join('%' + c for c in known)})")
        self.classes = {t.lstrip("%") for t in items if t.lstrip("%") in known}
        self.names = {t for t in items if t.lstrip("%") not in known}
        self.everything = not items

    def wants(self, name: str | None, args) -> bool:
        if self.everything:
            return True
        hit = name in self.names or any(name in CLASSES[c] for c in self.classes if c != "file")
        if not hit and "file" in self.classes and args.signature is not None:
            hit = any(arg in PATH_ARGS and "char" in ctype
                      for arg, ctype in zip(args.signature.arg_names, args.signature.arg_types))
        return hit != self.negate
