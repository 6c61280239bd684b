"""`pyrebox run`: boot a VM with the plugin, run guest commands, stream output.

Batch mode (--cmd given): the commands and --file copies travel in a small
cpio archive appended to the default guest's initramfs; the guest's init runs
them in order and powers off (see guest/init for the markers it prints).
QEMU's stdout is the guest's serial console; the plugin prints on a pipe of
its own. Both are streamed to our stdout line by line: PyREBox and script
lines with their "[...] " prefix, guest lines through guest_line (controls
shown as text, "guest> " before a line that starts like a host-side one),
and init's markers only when they carry the run's nonce (GuestMarkers),
without it. Success is judged from those markers and QEMU's exit status.

Interactive mode (no --cmd, also with --file, or --loadvm: the restored
guest is told to start its shell): the guest's serial console is the terminal.
QEMU's serial port is a Unix socket of the run dir; the launcher relays it
to the terminal (in raw mode) and prints the plugin's lines between, and the
escape key (Ctrl-], ESCAPE_KEY) switches the terminal to the PyREBox console
and `q` back (see Terminal). When a script opens the shell, the terminal
switches to the console by itself.

Either way QEMU never outlives the launcher (PR_SET_PDEATHSIG, and SIGINT,
SIGTERM, SIGHUP handlers that stop it and remove the run dir), the run dir
is 0700 and the run's umask 077. QEMU's QMP socket is at <run dir>/qmp.sock,
printed at start, and the PyREBox console at <run dir>/console.sock
(`pyrebox attach`). The user's QMP socket stays free for the user.

Snapshots: every run has a qcow2 disk that is not the guest's (QEMU keeps
snapshots in it): a scratch one in the run dir, or --disk FILE (created if
missing) to keep snapshots across runs. --savevm NAME runs the commands,
then lets the guest wait for more commands on its console (the "snapshot
point"), saves the VM there as NAME and ends the run. --loadvm NAME starts
QEMU from that snapshot: the guest is at its snapshot point, and the
launcher types the --cmd lines into its console, where they run with the
same markers as in a fresh boot (numbered from 1). So one boot is paid
once, and each analysis starts from the same machine state.
The plugin gets two QMP sockets of its own, since a QMP server serves one
client at a time: <run dir>/pyrebox-qmp.sock for the scripts' send_key,
mouse, screenshot and snapshot calls, and console-qmp.sock for the console.

With --nic MODEL the VM gets that NIC on an isolated user-mode network
(restrict=on: the guest reaches only QEMU's own gateway, DHCP and DNS
addresses, never the host or another machine; --hostfwd rules let the host
send in), and two filter-mirror objects copy every frame the guest sends and
receives to chardev sockets the plugin reads (NIC_SEND_CB / NIC_REC_CB).
"""

from __future__ import annotations

import codecs
import ctypes
import dataclasses
import gzip
import os
import re
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import config as config_mod
from . import own_vm, paths, qemu
from .agent_batch import AgentBatch, AgentTimeout
from .guest_agent import AGENT_SOCKET, NO_AGENT, AgentError
from .cpio import CpioArchive
from .qmp_client import Qmp, QmpError, snapshot

END_MARKER = "PYREBOX-GUEST-END"
# The guest waits at its snapshot point for command lines on its console;
# this line ends the wait (see guest/init).
SNAPSHOT_POINT = "PYREBOX-SNAPSHOT-POINT"
SERVE_END = "PYREBOX-SERVE-END"
# Typed at the snapshot point: the first line of a --loadvm run gives the
# guest that run's nonce; SERVE_SHELL makes the guest start its interactive
# shell there (--loadvm without --cmd).
NONCE_LINE = "PYREBOX-NONCE"
SERVE_SHELL = "PYREBOX-SERVE-SHELL"
# In the overlay archive: the run's nonce, which guest/init reads and deletes
# before any command runs (see GuestMarkers).
NONCE_FILE = "/pyrebox/nonce"
# A guest line that could pass for a host-side one (PyREBox's "[pyrebox]",
# a script's "[<name>]", "[qemu]", "[python]", "pyrebox:" messages, the
# markers) is shown after this prefix.
GUEST_PREFIX = "guest> "
RESERVED_STARTS = ("[", "pyrebox", "PYREBOX-")
# Signals that stop a run: QEMU is stopped, the run dir removed, and the
# launcher exits with 128 + the signal number.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
QEMU_STOP_GRACE = 5.0  # seconds QEMU gets to end on SIGTERM before SIGKILL
PR_SET_PDEATHSIG = 1
SCRATCH_DISK_SIZE = "64M"
# NIC models --nic accepts (the guest image has their drivers).
NIC_MODELS = ("ne2k_pci", "e1000", "virtio-net-pci")
NIC_ALIASES = {"ne2k-pci": "ne2k_pci", "virtio-net": "virtio-net-pci", "virtio": "virtio-net-pci"}
# The observed NIC's MAC address (QEMU's default first address).
NIC_MAC = "52:54:00:12:34:56"
GUEST_HOME = "/root"
ESCAPE_KEY = b"\x1d"  # Ctrl-]: from the guest's console to the PyREBox console
ESCAPE_NAME = "Ctrl-]"


class RunError(Exception):
    """Bad arguments or set-up for a run; the message says what to do."""


@dataclasses.dataclass
class GuestFile:
    host: str
    guest: str


@dataclasses.dataclass
class RunOptions:
    conf: str | None = None
    files: list[GuestFile] = dataclasses.field(default_factory=list)
    commands: list[str] = dataclasses.field(default_factory=list)
    timeout: float | None = None
    smp: int = 1
    memory: str = "512M"
    nokaslr: bool = False
    # The guest agent's channel (own_vm.agent_args): always for --image; for
    # the default guest with --agent, whose init then starts qemu-ga.
    agent: bool = False
    plugin: bool = True  # False: plain QEMU (for comparisons)
    nic: str | None = None  # NIC model to add (NIC_MODELS), on an isolated network
    hostfwd: list[str] = dataclasses.field(default_factory=list)  # QEMU hostfwd rules
    extra: list[str] = dataclasses.field(default_factory=list)
    disk: str | None = None    # qcow2 file for snapshots (None: a scratch one per run)
    savevm: str | None = None  # save the VM at its snapshot point under this name
    loadvm: str | None = None  # start from this snapshot
    guest_kernel: str | None = None  # boot the guest of guest/build.py --guest-kernel SPEC
    # The kernel's symbol table: a file, ISF_FROM_MEMORY (built from guest
    # memory, or taken from the cache of tables built so), or None: the
    # built guest's own table, and for an own VM the one built from memory.
    isf: str | None = None
    # The user's own VM (pyrebox.own_vm): its disk image, and optionally a
    # kernel to boot directly with its initrd and command line.
    image: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    append: str | None = None
    keep_overlay: str | None = None  # the overlay's file, kept after the run
    write: bool = False              # boot the image itself, read-write

    @property
    def batch(self) -> bool:
        """Commands run and the guest powers off; otherwise (no --cmd, also
        with --file or --loadvm) the guest's shell is on the terminal."""
        return bool(self.commands or self.savevm)


# --isf memory: the table comes from guest memory (pyrebox.kernel_tables).
ISF_FROM_MEMORY = "memory"


def signal_name(number: int) -> str:
    """SIGSEGV for 11; a number the host does not name stays a number."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def parse_file_spec(spec: str) -> GuestFile:
    """HOST[:GUEST]; GUEST defaults to /root/<basename of HOST>."""
    host, sep, guest = spec.partition(":")
    if not os.path.isfile(host):
        raise RunError(f"--file {spec}: host file '{host}' not found")
    if not sep or not guest:
        guest = f"{GUEST_HOME}/{os.path.basename(host)}"
    elif not guest.startswith("/"):
        guest = f"{GUEST_HOME}/{guest}"
    return GuestFile(os.path.abspath(host), guest)


def overlay_archive(commands: list[str] | None, files: list[GuestFile],
                    snapshot_point: bool = False, nonce: str | None = None) -> bytes:
    """The per-run archive: the user's files; for a batch run (commands not
    None) /pyrebox/commands, /pyrebox/nonce and, when the guest is to wait
    for a snapshot, /pyrebox/snapshot-point. Without /pyrebox/commands the
    guest's init starts its interactive shell."""
    archive = CpioArchive()
    for f in files:
        st = os.stat(f.host)
        archive.add_file(f.guest, source=f.host, mode=st.st_mode & 0o777)
    if commands is not None:
        archive.add_file("/pyrebox/commands", "".join(c + "\n" for c in commands).encode())
        if nonce is not None:
            archive.add_file(NONCE_FILE, (nonce + "\n").encode(), mode=0o600)
        if snapshot_point:
            archive.add_file("/pyrebox/snapshot-point", b"")
    return archive.to_bytes()


# --------------------------------------------------------------- guest text

# C0 controls but tab, DEL and C1 controls, each as visible text: ESC is
# "^[", BEL "^G", DEL "^?", CSI (U+009B) "\x9b". A byte that is not UTF-8
# is shown as "\xNN" by the decoder (errors="backslashreplace").
_CONTROLS = {c: f"^{chr(c + 64)}" for c in range(32) if c != 9}
_CONTROLS[0x7F] = "^?"
_CONTROLS.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})


def neutralise(text: str) -> str:
    """`text` with every control character but tab shown as visible text,
    so that nothing in it acts on a terminal."""
    return text.translate(_CONTROLS)


def serial_text(raw: bytes) -> str:
    """One line read from the serial console, as text: without its line end
    and carriage returns, bytes that are not UTF-8 as \\xNN."""
    return raw.decode("utf-8", "backslashreplace").rstrip("\r\n").replace("\r", "")


def guest_line(text: str) -> str:
    """One line of guest console text (without its newline; carriage
    returns already dropped) as the launcher shows it: controls neutralised,
    and GUEST_PREFIX before a line that starts like a host-side one."""
    text = neutralise(text)
    return GUEST_PREFIX + text if text.startswith(RESERVED_STARTS) else text


class GuestStream:
    """guest_line for a byte stream that arrives in pieces (the interactive
    console when our stdout is not a terminal): feed() returns the text
    that can be shown so far. The start of a line is held back only while
    it could still become a reserved start ("pyreb" could be "pyrebox")."""

    def __init__(self):
        self._decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")
        self._start: str | None = ""  # the current line's undecided start; None: decided

    def feed(self, data: bytes) -> str:
        out = []
        for ch in self._decoder.decode(data):
            if ch == "\r":
                continue  # the CR of CRLF; alone it could overwrite a shown line
            if ch == "\n":
                if self._start:
                    out.append(guest_line(self._start))
                out.append("\n")
                self._start = ""
            elif self._start is None:
                out.append(neutralise(ch))
            else:
                self._start += ch
                if (not self._start.startswith(RESERVED_STARTS)
                        and any(p.startswith(self._start) for p in RESERVED_STARTS)):
                    continue
                out.append(guest_line(self._start))
                self._start = None
        return "".join(out)


class GuestMarkers:
    """The markers guest/init prints, accepted only with the run's nonce.

    The nonce is random per run and reaches init on a path no guest program
    sees before init has read and deleted it (the overlay archive, or the
    first line typed at the snapshot point), so a program that prints a
    marker cannot make the launcher believe a command finished. A marker
    can end a line of command output (output without a final newline)."""

    def __init__(self, nonce: str):
        self.nonce = nonce
        self._pattern = re.compile(
            r"(PYREBOX-(?:CMD-BEGIN \d+|CMD-END \d+ rc=\d+|GUEST-END|SNAPSHOT-POINT)) "
            + re.escape(nonce) + "$")

    def split(self, line: str) -> tuple[str, str | None]:
        """(text before the marker, the marker without its nonce), or
        (line, None) when the line carries no marker of this run."""
        m = self._pattern.search(line)
        if m is None:
            return line, None
        return line[:m.start()], m.group(1)


def new_nonce() -> str:
    return secrets.token_hex(16)


def normalise_hostfwd(rule: str) -> str:
    """A --hostfwd rule as QEMU gets it: an empty host address becomes
    127.0.0.1 (QEMU would listen on every address). Raises RunError for a
    rule not in QEMU's form."""
    form = "udp|tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"
    proto, _, rest = rule.partition(":")
    if "," in rule or proto not in ("tcp", "udp"):
        raise RunError(f"--hostfwd {rule}: expected QEMU's hostfwd form {form}")
    host, sep, ports = rest.partition(":")
    if not sep or "-" not in ports or "-" in host:
        raise RunError(f"--hostfwd {rule}: expected QEMU's hostfwd form {form} (the host "
                       f"address may be empty, its colon may not: {proto}::HOSTPORT-:GUESTPORT)")
    return f"{proto}:{host or '127.0.0.1'}:{ports}"


def memory_bytes(spec: str, flag: str = "--memory") -> int:
    """QEMU's -m size in bytes: a number with an optional B, K, M, G or T
    suffix (binary); a bare number is MiB, as QEMU takes it. Errors name
    `flag`, where the size was given."""
    text = spec.strip()
    if "=" in text:  # -m size=...,slots=...
        text = next((p.split("=", 1)[1] for p in text.split(",") if p.startswith("size=")), "")
    units = {"B": 0, "K": 10, "M": 20, "G": 30, "T": 40}
    shift = 20
    if text and text[-1].upper() in units:
        shift = units[text[-1].upper()]
        text = text[:-1]
    try:
        value = float(text)
    except ValueError:
        raise RunError(f"{flag} {spec}: not a size (e.g. 512M or 2G)") from None
    if value <= 0:
        raise RunError(f"{flag} {spec}: must be positive")
    return int(value * (1 << shift))


def _memory_given(opts: RunOptions) -> tuple[str, str]:
    """(the memory size QEMU gets, the flag it came from): the last
    `-m`/`--m` among the QEMU arguments after `--` (QEMU takes the last
    one), else --memory."""
    memory, flag = opts.memory, "--memory"
    extra = opts.extra
    for i, arg in enumerate(extra):
        if arg in ("-m", "--m") and i + 1 < len(extra):
            memory, flag = extra[i + 1], f"{arg} (after --)"
        elif arg.startswith(("-m=", "--m=")):
            memory, flag = arg.split("=", 1)[1], f"{arg.split('=', 1)[0]} (after --)"
    return memory, flag


def qemu_memory(opts: RunOptions) -> str:
    """The guest's memory as QEMU gets it (see _memory_given). The plugin is
    told the same size, so it scans the RAM the guest has."""
    return _memory_given(opts)[0]


def is_own_vm(opts: RunOptions) -> bool:
    """The VM is the user's (--image, or a machine described after --),
    not PyREBox's guest."""
    return opts.image is not None or qemu.describes_own_vm(opts.extra)


def validate_image(opts: RunOptions) -> own_vm.Image | None:
    """The --image options go together, and with nothing that describes
    another machine; the image, as qemu-img reads it (None without one)."""
    if opts.image is None:
        for flag, value in (("--kernel", opts.kernel), ("--initrd", opts.initrd),
                            ("--append", opts.append), ("--keep-overlay", opts.keep_overlay),
                            ("--write", opts.write or None)):
            if value is not None:
                raise RunError(f"{flag} goes with --image DISK (the disk of your own VM)")
        return None
    if qemu.describes_own_vm(opts.extra):
        given = ", ".join(a for a in opts.extra if a in qemu.USER_VM_OPTIONS)
        raise RunError(f"--image {opts.image} and the QEMU arguments after -- ({given}) both "
                       f"describe the machine; give one of them")
    if opts.guest_kernel is not None:
        raise RunError(f"--guest-kernel {opts.guest_kernel} picks the kernel of PyREBox's guest; "
                       f"with --image give --kernel VMLINUZ (or none: the image's bootloader)")
    if opts.write and opts.keep_overlay:
        raise RunError("--write writes the image itself; --keep-overlay keeps an overlay "
                       "instead: give one of them")
    try:
        image = own_vm.inspect(opts.image)
        own_vm.kernel_args(opts.kernel, opts.initrd, opts.append)
    except own_vm.ImageError as e:
        raise RunError(str(e)) from None
    return image


def image_snapshot_checks(opts: RunOptions, flag: str, image: own_vm.Image) -> None:
    """--savevm/--loadvm with --image: the snapshots live in the disk the
    guest writes, which must be qcow2 and outlive the run: a kept overlay,
    or with --write a qcow2 image."""
    if opts.disk is not None:
        raise RunError(f"--disk holds the default guest's snapshots; with --image they live "
                       f"in the overlay: give --keep-overlay FILE instead of --disk")
    if opts.write:
        if image.format != "qcow2":
            raise RunError(f"{flag} with --write needs a qcow2 image ({opts.image} is raw and "
                           f"cannot hold snapshots); use --keep-overlay FILE instead")
        return
    if opts.keep_overlay is None:
        raise RunError(f"{flag} with --image needs --keep-overlay FILE: the snapshots live in "
                       f"that overlay, which outlives the run")
    if flag == "--loadvm" and not os.path.isfile(opts.keep_overlay):
        raise RunError(f"--loadvm {opts.loadvm}: {opts.keep_overlay} does not exist (make it "
                       f"with --image {opts.image} --keep-overlay {opts.keep_overlay} "
                       f"--savevm NAME)")


def validate(opts: RunOptions) -> config_mod.Config:
    """Checks everything that can be checked before QEMU starts."""
    image = validate_image(opts)
    for cmd in opts.commands:
        if "\n" in cmd:
            raise RunError(f"--cmd {cmd!r}: a guest command is one line")
    if opts.smp < 1:
        raise RunError(f"--smp {opts.smp}: needs at least 1 vCPU")
    if opts.timeout is not None and opts.timeout <= 0:
        raise RunError(f"--timeout {opts.timeout}: must be a positive number of seconds")
    memory_bytes(*_memory_given(opts))
    for flag, name in (("--savevm", opts.savevm), ("--loadvm", opts.loadvm)):
        if name is not None:
            if not name or any(c.isspace() for c in name):
                raise RunError(f"{flag} {name!r}: a snapshot name is one word")
            if opts.image is not None:
                image_snapshot_checks(opts, flag, image)
                continue
            if opts.disk is None:
                raise RunError(f"{flag} needs --disk FILE: snapshots live in that qcow2 file, "
                               f"which outlives the run")
            if is_own_vm(opts):
                raise RunError(f"{flag} works with the default guest or --image DISK; the QEMU "
                               f"arguments after -- describe a VM PyREBox cannot snapshot")
    if opts.savevm and opts.loadvm:
        raise RunError("--savevm and --loadvm cannot be combined: save from a fresh boot, "
                       "then load in later runs")
    if opts.loadvm and opts.files and opts.image is None:
        raise RunError("--file cannot be used with --loadvm: the snapshot's memory replaces "
                       "the guest image; copy files in the run that saves the snapshot")
    if opts.loadvm and opts.image is None and not os.path.isfile(opts.disk):
        raise RunError(f"--loadvm {opts.loadvm}: {opts.disk} does not exist (make it with "
                       f"--disk {opts.disk} --savevm NAME)")
    if opts.nic is not None:
        opts.nic = NIC_ALIASES.get(opts.nic, opts.nic)
        if opts.nic not in NIC_MODELS:
            raise RunError(f"--nic {opts.nic}: unknown NIC model (use one of "
                           f"{', '.join(NIC_MODELS)})")
    if opts.hostfwd and opts.nic is None:
        raise RunError("--hostfwd needs --nic MODEL (the forwarded ports reach that NIC)")
    opts.hostfwd = [normalise_hostfwd(rule) for rule in opts.hostfwd]
    if opts.loadvm:
        for cmd in opts.commands:
            if cmd in (SERVE_END, SERVE_SHELL) or cmd.startswith(NONCE_LINE + " "):
                raise RunError(f"--cmd {cmd!r}: that line is the launcher's own at the "
                               f"snapshot point; write the command another way")
    if opts.guest_kernel is not None and qemu.describes_own_vm(opts.extra):
        raise RunError(f"--guest-kernel {opts.guest_kernel} picks the kernel of PyREBox's guest; "
                       f"the extra QEMU arguments describe a VM of your own")
    if opts.isf is not None and opts.isf != ISF_FROM_MEMORY and not os.path.isfile(opts.isf):
        raise RunError(f"--isf {opts.isf}: no such file (give a Volatility 3 ISF, e.g. from "
                       f"`pyrebox symbols`, or `--isf {ISF_FROM_MEMORY}` to build the table from "
                       f"the running kernel)")
    conf = config_mod.load(opts.conf)  # ConfigError names the key
    if opts.image is None and is_own_vm(opts) and (opts.commands or opts.files):
        raise RunError("--cmd and --file need the guest agent's channel, which --image adds: "
                       "give your VM's disk as --image DISK (the QEMU arguments after -- "
                       "describe a VM PyREBox has no channel into)")
    return conf


def build_guest(spec: str, emit) -> None:
    """Builds the guest of --guest-kernel SPEC unless it is up to date
    (guest/build.py; its progress lines go to EMIT as `pyrebox: guest: ...`).
    Raises paths.SetupError when the build fails."""
    proc = subprocess.Popen([sys.executable, paths.BUILDER, "--guest-kernel", spec],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        with proc.stdout:
            for line in proc.stdout:
                emit(f"pyrebox: {line.rstrip()}")
        status = proc.wait()
    except KeyboardInterrupt:  # the builder got the terminal's SIGINT too
        proc.wait()
        print("\npyrebox: stopped by SIGINT while building the guest", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None
    if status != 0:
        raise paths.SetupError(f"the guest of --guest-kernel {spec} could not be built "
                               f"(guest/build.py's error above)")


def write_pid(rundir: str, pid: int) -> None:
    """<run dir>/qemu.pid: lets `pyrebox attach` tell live runs from stale ones."""
    with open(os.path.join(rundir, "qemu.pid"), "w") as f:
        f.write(f"{pid}\n")


def _qemu_child_setup(parent: int, prctl):
    """preexec_fn of QEMU: it gets SIGKILL when the launcher dies, however
    it dies (a SIGKILLed launcher runs no handler). PR_SET_PDEATHSIG fires
    when the thread that forked the child ends, so QEMU is started from
    the main thread. If the launcher died before prctl took effect, the
    parent is already someone else: end here instead of running orphaned.
    The umask keeps the run dir's sockets and every file QEMU writes (the
    snapshot disk, screenshots, memory images) private to the user."""
    def setup():
        if prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)
        os.umask(0o077)
    return setup


def _stop_process(pid: int) -> None:
    """SIGTERM (QEMU then shuts down cleanly, leaving a consistent qcow2),
    SIGKILL after QEMU_STOP_GRACE; reaps it. Uses os.waitpid directly:
    this runs in a signal handler, possibly inside Popen.wait, whose lock
    is held by the interrupted frame."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + QEMU_STOP_GRACE
    try:
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        pass  # already reaped


class Runner:
    def __init__(self, opts: RunOptions, out=None):
        self.opts = opts
        self.out = out or sys.stdout
        self._out_lock = threading.Lock()
        self.saw_end = False
        self.ended: list[int] = []  # command numbers of the END markers, in order
        self.snapshot_saved = False
        self.markers = GuestMarkers(new_nonce())
        self._proc: subprocess.Popen | None = None
        self._rundir: str | None = None
        self._stopping = False
        self._on_stop: list = []  # undo steps for a signal (the terminal's mode)
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before any fork
        self._built_guest: paths.Guest | None = None  # the --guest-kernel guest, once looked up
        self._image: own_vm.Image | None = None  # the --image disk, once inspected

    def emit(self, line: str) -> None:
        with self._out_lock:
            self.out.write(line + "\n")
            self.out.flush()

    def own_vm(self) -> bool:
        return is_own_vm(self.opts)

    def _user_image(self) -> own_vm.Image:
        """The --image disk as qemu-img reads it (once per run)."""
        if self._image is None:
            self._image = own_vm.inspect(self.opts.image)
        return self._image

    def _image_disk(self, rundir: str) -> tuple[str, str]:
        """(file, format) of the --image run's disk: the overlay, or with
        --write the image itself."""
        if self.opts.write:
            image = self._user_image()
            return image.path, image.format
        return (os.path.abspath(self.opts.keep_overlay) if self.opts.keep_overlay
                else os.path.join(rundir, "overlay.qcow2")), "qcow2"

    def command_line(self, rundir: str, plugin_fd: int | None) -> list[str]:
        opts = self.opts
        binary = qemu.find("x86_64")
        plugin_opts: dict[str, str | int] = {"venv": paths.VENV, "pythonpath": paths.PYTHONPATH}
        if opts.conf:
            plugin_opts["conf"] = os.path.abspath(opts.conf)
        if plugin_fd is not None:
            plugin_opts["out"] = plugin_fd
        plugin_opts["qmp"] = f"{rundir}/pyrebox-qmp.sock"
        memory = qemu_memory(opts)
        plugin_opts["ram"] = memory_bytes(memory)
        plugin_opts["console"] = os.path.join(rundir, "console.sock")
        plugin_opts["console_qmp"] = os.path.join(rundir, "console-qmp.sock")
        if opts.isf is not None and opts.isf != ISF_FROM_MEMORY:
            plugin_opts["isf"] = os.path.abspath(opts.isf)
        elif (opts.isf is None and not self.own_vm()
              and os.path.isfile(self._guest_files()[2])):
            plugin_opts["isf"] = self._guest_files()[2]
        cmd = [binary, "-m", memory, "-smp", str(opts.smp), "-display", "none",
               "-no-reboot", "-nic", "none",
               "-qmp", f"unix:{rundir}/qmp.sock,server=on,wait=off"]
        if opts.plugin:
            cmd += ["-chardev", f"socket,id=pyrebox-qmp,path={rundir}/pyrebox-qmp.sock,"
                                "server=on,wait=off",
                    "-mon", "chardev=pyrebox-qmp,mode=control"]
        if opts.nic is not None:
            cmd += self._nic_args(rundir)
            if opts.plugin:
                plugin_opts["nic_send"] = f"{rundir}/nic-send.sock"
                plugin_opts["nic_recv"] = f"{rundir}/nic-recv.sock"
        if opts.plugin:
            cmd += ["-plugin", qemu.plugin_arg(paths.require(paths.PLUGIN, "the PyREBox plugin"),
                                               **plugin_opts),
                    "-qmp", f"unix:{plugin_opts['console_qmp']},server=on,wait=off"]
        if opts.batch:
            cmd += ["-serial", "stdio", "-monitor", "none"]
        else:
            cmd += ["-chardev", f"socket,id=pyrebox-serial,path={rundir}/serial.sock,"
                                f"server=on,wait=on",
                    "-serial", "chardev:pyrebox-serial", "-monitor", "none"]
        if opts.image is not None:
            cmd += own_vm.drive_args(*self._image_disk(rundir))
            cmd += own_vm.kernel_args(opts.kernel, opts.initrd, opts.append)
        if opts.image is not None or opts.agent:
            cmd += own_vm.agent_args(os.path.join(rundir, AGENT_SOCKET))
        if self._needs_snapshot_disk():
            cmd += ["-drive",
                    f"if=none,id=pyrebox-disk,format=qcow2,file={self._disk(rundir)}"]
        if opts.loadvm:
            cmd += ["-loadvm", opts.loadvm]
        if not self.own_vm():
            append = ("console=ttyS0 quiet panic=-1" + (" nokaslr" if opts.nokaslr else "")
                      + (" pyrebox.agent" if opts.agent else ""))
            cmd += ["-kernel", paths.require(self._guest_files()[0], "the default guest kernel"),
                    "-initrd", self._initrd(rundir), "-append", append]
        return cmd + opts.extra

    def _guest_files(self) -> tuple[str, str, str]:
        """(kernel, initramfs, ISF) of the guest to boot: the default guest's,
        or those of the --guest-kernel guest (SetupError when not built)."""
        if self.opts.guest_kernel is None:
            return paths.GUEST_KERNEL, paths.GUEST_INITRAMFS, paths.GUEST_ISF
        if self._built_guest is None:
            self._built_guest = paths.guest(self.opts.guest_kernel)
        return self._built_guest.vmlinuz, self._built_guest.initramfs, self._built_guest.isf

    def qemu_env(self) -> dict[str, str]:
        """QEMU's environment: the launcher's, and for scripts in the VM the
        folder of the guest it boots (paths.running_guest)."""
        env = dict(os.environ)
        env.pop(paths.GUEST_ENV, None)
        if not self.own_vm():
            env[paths.GUEST_ENV] = os.path.dirname(self._guest_files()[0])
        return env

    def _disk(self, rundir: str) -> str:
        """The qcow2 file QEMU keeps snapshots in."""
        return (os.path.abspath(self.opts.disk) if self.opts.disk
                else os.path.join(rundir, "scratch.qcow2"))

    def _needs_snapshot_disk(self) -> bool:
        """Snapshots need a qcow2 disk: an --image run's own disk is one (its
        overlay), unless --write boots a raw image."""
        return self.opts.image is None or (self.opts.write and
                                           self._user_image().format != "qcow2")

    def _make_disk(self, rundir: str) -> None:
        """Creates the snapshot disk when it does not exist yet."""
        path = self._disk(rundir)
        if os.path.exists(path):
            return
        made = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path,
                               SCRATCH_DISK_SIZE], capture_output=True, text=True)
        if made.returncode != 0:
            raise RunError(f"cannot create the snapshot disk {path}: "
                           f"{made.stderr.strip() or made.stdout.strip()}")
        os.chmod(path, 0o600)  # it will hold the guest's memory (snapshots)

    def _prepare_image(self, rundir: str) -> None:
        """The overlay of an --image run (created, or checked when kept);
        with --write, a line saying the image itself is written."""
        image = self._user_image()
        if self.opts.write:
            self.emit(f"[pyrebox] --write: the guest writes to {image.path} itself "
                      f"(no overlay)")
            return
        overlay, _ = self._image_disk(rundir)
        own_vm.make_overlay(image, overlay)
        if self.opts.keep_overlay:
            self.emit(f"[pyrebox] the guest writes to the overlay {overlay} (kept); "
                      f"{image.path} is not written")

    def _nic_args(self, rundir: str) -> list[str]:
        """The NIC, its isolated user-mode network and, for the plugin, one
        filter-mirror per direction. On a netdev, queue=rx carries what the
        netdev receives (frames the guest sends) and queue=tx what it
        transmits (frames to the guest)."""
        netdev = "user,id=pyrebox-net,restrict=on,ipv6=off" + "".join(
            f",hostfwd={rule}" for rule in self.opts.hostfwd)
        args = ["-netdev", netdev, "-device", f"{self.opts.nic},netdev=pyrebox-net,mac={NIC_MAC}"]
        if self.opts.plugin:
            for direction, queue in (("send", "rx"), ("recv", "tx")):
                args += ["-chardev", f"socket,id=pyrebox-nic-{direction},"
                                     f"path={rundir}/nic-{direction}.sock,server=on,wait=off",
                         "-object", f"filter-mirror,id=pyrebox-mirror-{direction},"
                                    f"netdev=pyrebox-net,queue={queue},"
                                    f"outdev=pyrebox-nic-{direction}"]
        return args

    def _initrd(self, rundir: str) -> str:
        base = paths.require(self._guest_files()[1], "the default guest image")
        if not self.opts.batch and not self.opts.files:
            return base
        # The kernel unpacks concatenated archives in order; ours go last.
        path = os.path.join(rundir, "initrd")
        with open(path, "wb") as out, open(base, "rb") as src:
            shutil.copyfileobj(src, out)
            out.write(overlay_archive(self.opts.commands if self.opts.batch else None,
                                      self.opts.files, snapshot_point=bool(self.opts.savevm),
                                      nonce=self.markers.nonce))
        return path

    def _start_qemu(self, cmd: list[str], **popen) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, preexec_fn=_qemu_child_setup(os.getpid(), self._prctl),
                                env=self.qemu_env(), **popen)
        self._proc = proc
        return proc

    def _on_signal(self, signum, frame) -> None:
        """SIGINT, SIGTERM, SIGHUP: stop QEMU, undo the terminal's raw mode,
        remove the run dir, exit 128 + signum. Runs in the main thread,
        possibly in the middle of anything, so it writes its message with
        os.write and leaves with os._exit (no lock it could wait for)."""
        if self._stopping:
            return  # a second signal while stopping: the first one finishes
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            _stop_process(proc.pid)
        for undo in self._on_stop:
            try:
                undo()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        if self._rundir:
            shutil.rmtree(self._rundir, ignore_errors=True)
        name = signal.Signals(signum).name
        try:
            os.write(2, f"\npyrebox: stopped by {name}; QEMU was stopped\n".encode())
        except OSError:
            pass
        os._exit(128 + signum)

    def run(self) -> int:
        # Everything the run creates (run dir, sockets, disk, initrd, and in
        # QEMU memory images and screenshots) is the user's alone.
        os.umask(0o077)
        rundir = tempfile.mkdtemp(prefix="pyrebox-run-")  # mode 0700
        self._rundir = rundir
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            if self._needs_snapshot_disk():
                self._make_disk(rundir)
            if self.opts.image is not None:
                self._prepare_image(rundir)
            if self.opts.batch and self.opts.image is not None:
                return self._run_image_batch(rundir)
            if self.opts.batch:
                return self._run_batch(rundir)
            return self._run_interactive(rundir)
        finally:
            shutil.rmtree(rundir, ignore_errors=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run_interactive(self, rundir: str) -> int:
        read_fd, write_fd = os.pipe()
        try:
            cmd = self.command_line(rundir, plugin_fd=write_fd if self.opts.plugin else None)
            proc = self._start_qemu(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        write_pid(rundir, proc.pid)
        # A restored guest waits at its snapshot point: have it start its shell.
        first = (SERVE_SHELL + "\n").encode() if self.opts.loadvm and not self.own_vm() \
            else b""
        term = Terminal(rundir, proc, os.fdopen(read_fd, "rb"), self.opts.plugin, first)
        self._on_stop.append(term.restore)
        term.say(f"[pyrebox] QMP socket: {rundir}/qmp.sock")
        if self.opts.image is not None and self.opts.files:
            threading.Thread(target=self._copy_files_in, args=(rundir, proc, term.say),
                             daemon=True).start()
        if self.opts.plugin:
            term.say(f"[pyrebox] PyREBox console: {ESCAPE_NAME} here, or pyrebox attach {rundir}")
        return term.run(self.opts.timeout)

    def _run_batch(self, rundir: str) -> int:
        read_fd, write_fd = os.pipe()
        try:
            cmd = self.command_line(rundir, plugin_fd=write_fd)
            self.emit(f"[pyrebox] QMP socket: {rundir}/qmp.sock")
            typing = bool(self.opts.savevm or self.opts.loadvm)
            proc = self._start_qemu(cmd, stdin=subprocess.PIPE if typing else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=(write_fd,))
            self.snapshot_error = None
            if self.opts.loadvm:
                # The restored guest waits at its snapshot point: type this
                # run's nonce, the commands (QEMU hands them to the serial
                # port as the guest reads), then the end of the list.
                self._type([f"{NONCE_LINE} {self.markers.nonce}", *self.opts.commands,
                            SERVE_END])
        finally:
            os.close(write_fd)
        write_pid(rundir, proc.pid)
        readers = self._start_readers(proc, read_fd, self._pump_guest)
        deadline = None if self.opts.timeout is None else time.monotonic() + self.opts.timeout
        try:
            rc = proc.wait(timeout=None if deadline is None else max(0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            for t in readers:
                t.join(timeout=5)
            self.emit(f"pyrebox: timeout: the guest did not finish within "
                      f"{self.opts.timeout:g} s; QEMU was stopped")
            return 124
        for t in readers:
            t.join(timeout=10)
        if self.snapshot_error:
            self.emit(f"pyrebox: {self.snapshot_error}")
            return 1
        if rc < 0:
            self.emit(f"pyrebox: QEMU was killed by {signal_name(-rc)}")
            return 1
        if rc != 0:
            self.emit(f"pyrebox: QEMU failed (exit status {rc})")
            return 1
        problem = self.unfinished()
        if problem:
            self.emit(f"pyrebox: {problem}")
            return 1
        return 0

    def _copy_files_in(self, rundir: str, proc: subprocess.Popen, say) -> None:
        """An interactive --image run's --file copies, once the agent answers;
        a failure is said and the session goes on."""
        batch = AgentBatch(os.path.join(rundir, AGENT_SOCKET), say,
                           lambda: proc.poll() is None, None)
        try:
            batch.run(self.opts.files, [], show=say)
        except (AgentError, OSError) as e:
            if proc.poll() is None:
                say(f"[pyrebox] the files were not copied: {e}"
                    + ("" if batch.agent_seen else f" ({NO_AGENT})"))
        finally:
            batch.agent.close()

    def _start_readers(self, proc: subprocess.Popen, plugin_fd: int,
                       serial) -> list[threading.Thread]:
        """Threads reading a batch run's QEMU: its stdout (the serial
        console) with `serial(stream)`, the plugin's output pipe, its stderr."""
        readers = [
            threading.Thread(target=serial, args=(proc.stdout,), daemon=True),
            threading.Thread(target=self._pump_plugin, args=(os.fdopen(plugin_fd, "rb"),),
                             daemon=True),
            threading.Thread(target=self._pump_stderr, args=(proc.stderr,), daemon=True),
        ]
        for t in readers:
            t.start()
        return readers

    def _run_image_batch(self, rundir: str) -> int:
        """--image with --cmd or --savevm: the files, the snapshot and the
        commands go through the guest agent (pyrebox.agent_batch); the
        serial console is kept, and shown when the agent does not answer."""
        read_fd, write_fd = os.pipe()
        try:
            cmd = self.command_line(rundir, plugin_fd=write_fd)
            self.emit(f"[pyrebox] QMP socket: {rundir}/qmp.sock")
            proc = self._start_qemu(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        write_pid(rundir, proc.pid)
        deadline = None if self.opts.timeout is None else time.monotonic() + self.opts.timeout
        alive = lambda: proc.poll() is None  # noqa: E731
        batch = AgentBatch(os.path.join(rundir, AGENT_SOCKET), self.emit, alive, deadline)
        readers = self._start_readers(proc, read_fd,
                                      lambda stream: self._keep_console(stream, batch))
        qmp_path = os.path.join(rundir, "qmp.sock")
        problem = None  # what went wrong, when something did
        try:
            batch.run(self.opts.files, self.opts.commands,
                      show=lambda line: self.emit(guest_line(line)),
                      save=(lambda: self._save_image_snapshot(qmp_path))
                      if self.opts.savevm else None)
            self.emit(END_MARKER)
            batch.power_off(lambda: self._quit_qemu(qmp_path),
                            clean=bool(self.opts.keep_overlay or self.opts.write))
        except AgentTimeout:
            problem = (f"timeout: the guest agent had not answered after {self.opts.timeout:g} "
                       f"s; QEMU was stopped. {NO_AGENT}\n{batch.console_tail()}"
                       if not batch.agent_seen else
                       f"timeout: the guest did not finish within {self.opts.timeout:g} s; "
                       f"QEMU was stopped")
            code = 124
        except (AgentError, QmpError, OSError) as e:
            if not batch.agent_seen and proc.poll() is not None:
                problem = (f"QEMU ended (exit status {proc.returncode}) before the guest agent "
                           f"answered\n{batch.console_tail()}")
            elif not batch.agent_seen:
                problem = f"{NO_AGENT}: {e}\n{batch.console_tail()}"
            else:
                problem = str(e)
            code = 1
        if problem is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            for t in readers:
                t.join(timeout=5)
            self.emit(f"pyrebox: {problem}")
            return code
        rc = proc.wait()
        for t in readers:
            t.join(timeout=10)
        if rc < 0 and rc != -signal.SIGKILL:
            self.emit(f"pyrebox: QEMU was killed by {signal_name(-rc)}")
            return 1
        return 0

    def _keep_console(self, stream, batch: AgentBatch) -> None:
        for raw in stream:
            batch.console_line(neutralise(serial_text(raw)))

    def _save_image_snapshot(self, qmp_path: str) -> None:
        name = self.opts.savevm
        with Qmp.wait_for(qmp_path) as qmp:
            try:
                snapshot(qmp, "savevm", name)
            except QmpError as e:
                raise QmpError(f"saving snapshot {name} failed: {e}") from None
        self.snapshot_saved = True
        where = self.opts.keep_overlay or self.opts.image
        self.emit(f"[pyrebox] saved snapshot {name} in {os.path.abspath(where)}")

    def _quit_qemu(self, qmp_path: str) -> None:
        try:
            with Qmp.wait_for(qmp_path, timeout=5) as qmp:
                qmp.call("quit", timeout=10)
        except (QmpError, OSError):
            pass  # QEMU closes the connection as it quits, or is gone already
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def unfinished(self) -> str | None:
        """What of the run did not happen, judged from the markers that
        carried this run's nonce (never from other guest text); None when
        every command ended, in order, and the guest reached its end."""
        commands = self.opts.commands
        for n, cmd in enumerate(commands, 1):
            if self.ended[n - 1:n] != [n]:
                after = (f"after command {self.ended[-1]} ended" if self.ended
                         else "before any command ended")
                shown = cmd if len(cmd) <= 60 else cmd[:57] + "..."
                return (f"command {n} ({shown}) did not finish: the guest powered off {after}"
                        f" (success is judged from the markers of this run only)")
        if len(self.ended) != len(commands):
            return (f"the guest reported {len(self.ended)} finished commands, "
                    f"{len(commands)} were given")
        if self.opts.savevm and not self.snapshot_saved:
            return f"the guest did not reach its snapshot point; {self.opts.savevm} was not saved"
        if not self.saw_end:
            return "the guest powered off before its end marker"
        return None

    def _pump_guest(self, stream) -> None:
        """Shows guest lines (guest_line), and the markers of this run
        without their nonce: `PYREBOX-CMD-BEGIN 1`, `PYREBOX-CMD-END 1 rc=0`,
        `PYREBOX-GUEST-END`, `PYREBOX-SNAPSHOT-POINT`."""
        for raw in stream:
            line = serial_text(raw)
            text, marker = self.markers.split(line)
            if marker is None:
                self.emit(guest_line(line))
                continue
            if text:  # command output without a final newline
                self.emit(guest_line(text))
            self.emit(marker)
            self._on_marker(marker)

    def _on_marker(self, marker: str) -> None:
        words = marker.split()
        if words[0] == "PYREBOX-CMD-END":
            self.ended.append(int(words[1]))
        elif marker == END_MARKER:
            self.saw_end = True
        elif marker == SNAPSHOT_POINT and self.opts.savevm:
            threading.Thread(target=self._save_snapshot, daemon=True).start()

    def _type(self, lines: list[str]) -> None:
        try:
            self._proc.stdin.write("".join(l + "\n" for l in lines).encode())
            self._proc.stdin.flush()
        except OSError:
            pass  # QEMU is gone; its exit status says why

    def _save_snapshot(self) -> None:
        """At the guest's snapshot point: save, then let the guest finish."""
        name = self.opts.savevm
        try:
            with Qmp.wait_for(os.path.join(self._rundir, "qmp.sock")) as qmp:
                snapshot(qmp, "savevm", name)
            self.snapshot_saved = True
            self.emit(f"[pyrebox] saved snapshot {name} in {self.opts.disk}")
        except (QmpError, OSError) as e:
            self.snapshot_error = f"saving snapshot {name} failed: {e}"
        self._type([SERVE_END])

    def _pump_plugin(self, stream) -> None:
        with stream:
            for raw in stream:
                self.emit(raw.decode("utf-8", "replace").rstrip("\n"))

    def _pump_stderr(self, stream) -> None:
        for raw in stream:
            self.emit(f"[qemu] {raw.decode('utf-8', 'replace').rstrip(chr(10))}")


class Terminal:
    """Interactive mode: the terminal shows the guest's serial console, or
    the PyREBox console after ESCAPE_KEY (until `q`). Guest output that
    arrives while the PyREBox console is shown is kept and shown on return;
    PyREBox lines are shown in either mode.

    The guest's bytes reach our stdout as they are only when it is a
    terminal (it is then the guest's terminal, whose shell needs its control
    sequences); otherwise (a file, a pipe) they pass through GuestStream.
    `first` is typed into the guest's console before anything else."""

    def __init__(self, rundir: str, proc: subprocess.Popen, plugin_stream, plugin: bool,
                 first: bytes = b""):
        self.rundir = rundir
        self.proc = proc
        self.plugin_stream = plugin_stream
        self.plugin = plugin
        self.first = first
        self.tty = sys.stdin.isatty()
        self.filter = None if sys.stdout.isatty() else GuestStream()
        self._saved_tty = None
        self._original_tty = None
        if self.tty:
            import termios
            self._original_tty = termios.tcgetattr(0)
        self._lock = threading.Lock()
        self.mode = "guest"
        self.client = None
        self._held: list[bytes] = []
        self._wake_r, self._wake_w = os.pipe()
        self._want_console = False
        self.serial: socket.socket | None = None

    # --- output ---

    def _write(self, data: bytes) -> None:
        out = sys.stdout.buffer
        out.write(data)
        out.flush()

    def say(self, line: str) -> None:
        """A launcher or plugin line, shown in either mode."""
        with self._lock:
            client = self.client
            if client is None:
                self._write((line + ("\r\n" if self._saved_tty else "\n")).encode())
        if client is not None:
            client.show(line + "\n")

    def _pump_serial(self) -> None:
        while True:
            try:
                data = self.serial.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            if self.filter is not None:
                data = self.filter.feed(data).encode()
            with self._lock:
                if self.mode == "guest":
                    self._write(data)
                else:
                    self._held.append(data)
        self._wake()

    def _pump_plugin(self) -> None:
        from .console import WAITING_SHELL_MARKER
        with self.plugin_stream as stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.say(line)
                if WAITING_SHELL_MARKER in line:
                    self._want_console = True
                    self._wake()

    def _pump_stderr(self) -> None:
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if "QEMU waiting for connection on" not in line:  # the serial socket, ours
                self.say("[qemu] " + line)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    # --- terminal modes ---

    def _raw(self) -> None:
        if self.tty and self._saved_tty is None:
            import termios
            import tty
            self._saved_tty = termios.tcgetattr(0)
            tty.setraw(0)

    def restore(self) -> None:
        """Puts the terminal back as the run found it, whoever changed it
        since (raw mode here, or the console's prompt_toolkit): for a
        signal that ends the launcher at any point."""
        if self._original_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSANOW, self._original_tty)

    def _cooked(self) -> None:
        if self._saved_tty is not None:
            import termios
            termios.tcsetattr(0, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None

    # --- the loop ---

    def _connect_serial(self, deadline: float | None) -> bool:
        path = os.path.join(self.rundir, "serial.sock")
        while self.proc.poll() is None:
            try:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(path)
                self.serial = sock
                return True
            except OSError:
                sock.close()
                if deadline is not None and time.monotonic() > deadline:
                    return False
                time.sleep(0.05)
        return False

    def run(self, timeout: float | None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        if self.plugin:
            threading.Thread(target=self._pump_plugin, daemon=True).start()
        else:
            self.plugin_stream.close()
        if self._connect_serial(deadline):
            threading.Thread(target=self._pump_serial, daemon=True).start()
            self._send_serial(self.first)
        stdin_open = True
        timed_out = False
        try:
            self._raw()
            while self.proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    timed_out = True
                    break
                if self._want_console:
                    self._want_console = False
                    self._console()
                    continue
                fds = [self._wake_r] + ([0] if stdin_open else [])
                ready, _, _ = select.select(fds, [], [], 0.5)
                if self._wake_r in ready:
                    os.read(self._wake_r, 4096)
                if 0 not in ready:
                    continue
                data = os.read(0, 4096)
                if not data:
                    stdin_open = False
                    continue
                if ESCAPE_KEY in data and self.plugin:
                    before, _, after = data.partition(ESCAPE_KEY)
                    self._send_serial(before)
                    self._console()
                    self._send_serial(after)
                    continue
                self._send_serial(data)
        finally:
            self._cooked()
        if timed_out:
            self.proc.kill()
            self.proc.wait()
            print(f"pyrebox: timeout: the VM ran longer than {timeout:g} s", file=sys.stderr)
            return 124
        return self.proc.wait()

    def _send_serial(self, data: bytes) -> None:
        if data and self.serial is not None:
            try:
                self.serial.sendall(data)
            except OSError:
                pass

    def _console(self) -> None:
        """Shows the PyREBox console until the user leaves it."""
        from .client import ConsoleClient, connect
        self._cooked()
        try:
            sock = connect(os.path.join(self.rundir, "console.sock"))
        except OSError as e:
            self.say(f"[pyrebox] the PyREBox console is not reachable: {e}")
            self._raw()
            return
        print(f"\n[pyrebox] PyREBox console ('q' returns to the guest's console)", flush=True)
        client = ConsoleClient(sock)
        with self._lock:
            self.mode = "console"
            self.client = client
        try:
            client.interact()
        finally:
            with self._lock:
                self.client = None
                self.mode = "guest"
                held, self._held = self._held, []
            print(f"[pyrebox] back to the guest's console ({ESCAPE_NAME} for the PyREBox "
                  f"console)", flush=True)
            self._raw()
            with self._lock:
                for data in held:
                    self._write(data)
