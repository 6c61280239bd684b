"""The `pyrebox` command line."""

from __future__ import annotations

import argparse
import atexit
import configparser
import os
import shlex
import sys
import tempfile

from . import config as config_mod
from . import paths, qemu, run, trace_filter
from .symbols import cli as symbols_cli


def _run_parser(sub) -> None:
    p = sub.add_parser(
        "run", help="boot a VM with PyREBox (the default guest unless QEMU args say otherwise)",
        description="Boot QEMU with the PyREBox plugin. With --cmd, the default guest runs "
                    "the commands in order and powers off; without, you get its shell "
                    "(Ctrl-] switches to the PyREBox console and q back).")
    _add_run_arguments(p)


def _trace_parser(sub) -> None:
    p = sub.add_parser(
        "trace", help="an strace-format log of a program and its descendants",
        description="Run the --cmd commands in the guest (the default guest, or --image) and "
                    "log the system calls of PROGRAM, the first word of the last --cmd, and "
                    "of every process it starts, as strace -f does: "
                    "[pid N] openat(AT_FDCWD, \"/etc/hosts\", O_RDONLY|O_CLOEXEC) = 3. "
                    "See docs/trace.md.")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the log to FILE (default: the console)")
    p.add_argument("-e", "--filter", metavar="EXPR", default="",
                   help="which calls, as strace's -e trace=: names and classes (%%file, "
                        "%%network, %%process), '!' in front negates: -e openat,read, "
                        "-e %%network")
    p.add_argument("--json", action="store_true",
                   help="JSON lines (pid, name, number, args, raw, retval, error, text)")
    p.add_argument("--name", metavar="NAME",
                   help="the process name to follow (default: the basename of the last "
                        "--cmd's first word)")
    _add_run_arguments(p)


def _add_run_arguments(p) -> None:
    p.add_argument("--conf", help="pyrebox.conf to use (default: ./pyrebox.conf if present)")
    p.add_argument("--file", action="append", default=[], metavar="HOST[:GUEST]",
                   help="copy a host file into the guest before the commands run, or before "
                        "its shell starts (default guest path: /root/<name>)")
    p.add_argument("--cmd", action="append", default=[], metavar="COMMAND",
                   help="a shell command to run in the guest (repeatable, in order)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="stop QEMU and fail after S seconds (default: 600 with --cmd or --savevm, "
                        "none for the interactive shell)")
    p.add_argument("--smp", type=int, default=1, metavar="N", help="number of vCPUs")
    p.add_argument("--memory", "-m", default="512M",
                   help="guest memory (QEMU -m; a -m among the QEMU arguments after -- "
                        "takes its place, for QEMU and PyREBox alike)")
    p.add_argument("--nokaslr", action="store_true", help="boot the guest kernel with nokaslr")
    p.add_argument("--agent", action="store_true",
                   help="start QEMU's guest agent in the default guest (the console's put, get "
                        "and exec); an --image run always has the agent's channel")
    p.add_argument("--disk", metavar="FILE",
                   help="qcow2 file that keeps snapshots across runs (created if missing; "
                        "default: a scratch disk for this run only)")
    p.add_argument("--savevm", metavar="NAME",
                   help="after the --cmd commands, save the VM as snapshot NAME in --disk "
                        "and stop")
    p.add_argument("--loadvm", metavar="NAME",
                   help="start from snapshot NAME of --disk and run the --cmd commands there "
                        "(without --cmd: the guest's shell on the restored machine)")
    p.add_argument("--nic", metavar="MODEL",
                   help="give the VM a NIC (ne2k_pci, e1000 or virtio-net-pci) on an isolated "
                        "network whose frames reach NIC_SEND_CB / NIC_REC_CB")
    p.add_argument("--hostfwd", action="append", default=[], metavar="RULE",
                   help="with --nic: forward a host port into the guest, in QEMU's form "
                        "udp|tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT (repeatable; an "
                        "empty HOSTADDR is 127.0.0.1)")
    p.add_argument("--guest-kernel", metavar="SPEC",
                   help="boot the guest with another Debian kernel: a suite (bullseye, bookworm, "
                        "bookworm-backports, trixie, sid, experimental: its current "
                        "linux-image-amd64) or a kernel package name "
                        "(linux-image-6.12.95+deb12-amd64); built first if needed "
                        "(guest/build.py --guest-kernel SPEC)")
    p.add_argument("--isf", metavar="FILE|memory",
                   help="the guest kernel's symbol table (Volatility 3 ISF): a file, or 'memory' "
                        "to build it from the running kernel's memory (cached per kernel). "
                        "Default: the built guest's own table; for your own VM (-- -kernel, "
                        "-drive, ...) the one built from memory. [SYMBOLS] isf in the "
                        "configuration wins over both")
    p.add_argument("--image", metavar="DISK",
                   help="boot your own VM from its disk image (qcow2 or raw), through its own "
                        "bootloader or --kernel; the image is not written: the guest writes "
                        "to an overlay in the run dir")
    p.add_argument("--kernel", metavar="VMLINUZ", help="with --image: boot this kernel directly")
    p.add_argument("--initrd", metavar="INITRD", help="with --kernel: its initrd")
    p.add_argument("--append", metavar="ARGS",
                   help="with --kernel: its command line (PyREBox's console needs "
                        "console=ttyS0)")
    p.add_argument("--keep-overlay", metavar="FILE",
                   help="with --image: the overlay is FILE and is kept (created if missing; "
                        "a later run with it continues from it, snapshots included)")
    p.add_argument("--write", action="store_true",
                   help="with --image: the guest writes to the image itself (no overlay)")
    p.add_argument("--no-plugin", action="store_true",
                   help="run plain QEMU without PyREBox (same machine; for comparisons)")
    p.add_argument("extra", nargs="*", metavar="-- QEMU_ARGS",
                   help="extra QEMU arguments after --")


def _attach_parser(sub) -> None:
    p = sub.add_parser(
        "attach", help="open the PyREBox console of a running VM",
        description="Open the PyREBox console (console commands, the shell) of a VM started "
                    "with pyrebox run, from another terminal.")
    p.add_argument("rundir", nargs="?", metavar="RUNDIR",
                   help="the VM's run dir (printed at start; default: the most recent one "
                        "that is running)")


def _symbols_parser(sub) -> None:
    p = sub.add_parser(
        "symbols", help="write a Volatility 3 ISF for a Linux kernel from its own image "
                        "or a memory image of it running",
        description="Generate a Volatility 3 ISF (types from the kernel's .BTF, every symbol "
                    "from its kallsyms tables) for a vmlinuz or vmlinux, or for the kernel in a "
                    "memory image of a running x86-64 guest (raw or ELF core).")
    symbols_cli.add_arguments(p)
    p.set_defaults(symbols_run=symbols_cli.run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyrebox", description="PyREBox: a Python-scriptable "
                                     "reverse-engineering sandbox on stock QEMU")
    sub = parser.add_subparsers(dest="command", required=True)
    _run_parser(sub)
    _trace_parser(sub)
    _attach_parser(sub)
    _symbols_parser(sub)
    args = parser.parse_args(argv)

    if args.command == "symbols":
        return args.symbols_run(args)

    if args.command == "attach":
        from . import client
        return client.attach(args.rundir)

    if args.command in ("run", "trace"):
        try:
            conf = args.conf
            if args.command == "trace":
                conf = trace_conf(args)
            opts = run.RunOptions(
                conf=conf, files=[run.parse_file_spec(f) for f in args.file],
                commands=args.cmd, smp=args.smp, memory=args.memory, nokaslr=args.nokaslr,
                plugin=not args.no_plugin, agent=args.agent, nic=args.nic, hostfwd=args.hostfwd,
                timeout=args.timeout, extra=args.extra, disk=args.disk, savevm=args.savevm,
                loadvm=args.loadvm, guest_kernel=args.guest_kernel,
                isf=args.isf, image=args.image, kernel=args.kernel, initrd=args.initrd,
                append=args.append, keep_overlay=args.keep_overlay, write=args.write)
            if opts.timeout is None and opts.batch:
                opts.timeout = 600  # an interactive run has no default timeout
            run.validate(opts)
            runner = run.Runner(opts)
            if opts.guest_kernel is not None:
                run.build_guest(opts.guest_kernel, runner.emit)
            return runner.run()
        except (run.RunError, config_mod.ConfigError, qemu.QemuError, paths.SetupError) as e:
            print(f"pyrebox: {e}", file=sys.stderr)
            return 2
    return 2


def trace_conf(args) -> str:
    """The configuration of a trace run: the user's (--conf, or
    ./pyrebox.conf) with the trace script and its [TRACE] section added,
    written to a temporary file."""
    if not args.cmd:
        raise run.RunError("pyrebox trace needs --cmd 'PROGRAM ARGS' (the program to trace)")
    words = shlex.split(args.cmd[-1])
    name = args.name or (os.path.basename(words[0]) if words else "")
    if not name:
        raise run.RunError("the last --cmd is empty: give --cmd 'PROGRAM ARGS'")
    base = args.conf or ("pyrebox.conf" if os.path.isfile("pyrebox.conf") else None)
    user = config_mod.load(base)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    for section, values in user.sections.items():
        if section != "TRACE":
            parser[section] = dict(values)
    if user.isf:
        parser["SYMBOLS"] = {"isf": user.isf}
    modules = dict(parser["MODULES"]) if parser.has_section("MODULES") else {}
    modules["pyrebox.trace_script"] = "True"
    parser["MODULES"] = modules
    parser["TRACE"] = {"program": name,
                       "output": os.path.abspath(args.output) if args.output else "",
                       "filter": args.filter, "json": str(bool(args.json))}
    try:
        trace_filter.Filter(args.filter)  # checked before the guest boots
    except ValueError as e:
        raise run.RunError(str(e)) from None
    fd, path = tempfile.mkstemp(prefix="pyrebox-trace-", suffix=".conf")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        parser.write(f)
    atexit.register(lambda: os.path.exists(path) and os.unlink(path))
    return path


if __name__ == "__main__":
    sys.exit(main())
