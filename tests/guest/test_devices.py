"""Keyboard, NIC and screen on the default guest: api.send_key typed into
`keys` (KEYSTROKE_CB sees PyREBox's keycodes, the program the text), UDP
datagrams of `udp_peer` (NIC_SEND_CB / NIC_REC_CB see exactly those frames),
api.screenshot, and the bad-input messages. One boot per NIC model."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct

import pytest

from conftest import command_outputs, nm_symbol, run_plugin_only, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "devices_probe.py")
TEXT = "Pyrebox keys 42"
SENT, RECEIVED, GUEST_PORT = 5, 3, 7777
PAYLOAD_LEN = 48
GUEST_MAC = bytes.fromhex("525400123456")

# PyREBox's keycodes (scancode set 2) of the keys TEXT needs.
SET2 = {"p": 0x4d, "y": 0x35, "r": 0x2d, "e": 0x24, "b": 0x32, "o": 0x44, "x": 0x22,
        "k": 0x42, "s": 0x1b, "4": 0x25, "2": 0x1e, " ": 0x29}
SHIFT = 0x12


def expected_keycodes(text: str) -> list[int]:
    """send_key of one key: press (code), release (0xf0, code); with shift:
    shift pressed first and released last."""
    codes = []
    for char in text:
        code = SET2[char.lower()]
        if char.isupper():
            codes += [SHIFT, code, 0xF0, code, 0xF0, SHIFT]
        else:
            codes += [code, 0xF0, code]
    return codes


def sent_payload(i: int) -> bytes:
    """udp_payload(i) of guest/programs/udp_peer.c."""
    head = f"PYREBOX-UDP-SEND-{i:02d}-".encode()
    return head + bytes(ord("a") + (i + k) % 26 for k in range(len(head), PAYLOAD_LEN))


def incoming_payload(j: int) -> bytes:
    return f"PYREBOX-UDP-RECV-{j:02d}-".encode() + bytes(range(j, j + 40))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_frames(frames_hex: list[str], port: int, to_port: bool) -> list[bytes]:
    """Whole IPv4/UDP frames whose destination (to_port) or source port is `port`."""
    out = []
    for h in frames_hex:
        frame = bytes.fromhex(h)
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0x0F) * 4
        src, dst = struct.unpack(">HH", frame[14 + ihl:18 + ihl])
        if (dst if to_port else src) == port:
            out.append(frame)
    return out


def udp_payload_of(frame: bytes) -> bytes:
    ihl = (frame[14] & 0x0F) * 4
    (length,) = struct.unpack(">H", frame[18 + ihl:20 + ihl])
    return frame[22 + ihl:14 + ihl + length]


@pytest.fixture(scope="module", params=["ne2k_pci", "e1000", "virtio-net-pci"])
def devices_run(request, tmp_path_factory):
    nic = request.param
    work = tmp_path_factory.mktemp(f"devices-{nic}")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "devices_probe.py")
    programs = os.path.join(paths.GUEST, "programs")
    hostport = free_udp_port()
    with open(work / "devices_probe.json", "w") as f:
        json.dump({"keys_ready": nm_symbol(os.path.join(programs, "keys"),
                                           "pyrebox_keys_ready"),
                   "udp_ready": nm_symbol(os.path.join(programs, "udp_peer"),
                                          "pyrebox_udp_ready"),
                   "text": TEXT, "hostport": hostport,
                   "incoming": [incoming_payload(j).hex() for j in range(RECEIVED)]}, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.devices_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300", "--nic", nic,
                         "--hostfwd", f"udp:127.0.0.1:{hostport}-:{GUEST_PORT}",
                         "--cmd", f"keys {len(TEXT)}",
                         "--cmd", f"udp_peer {SENT} {RECEIVED} {GUEST_PORT}", cwd=str(work))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.devices_probe] RESULT ")]
    assert len(lines) == 1, result.stdout[-4000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    return nic, report, command_outputs(result.stdout), work, result.stdout


def test_send_key_types_the_text_and_keystroke_sees_each_press_and_release(devices_run):
    nic, report, outputs, _, stdout = devices_run
    assert report["errors"] == [], report["errors"]
    output, rc = outputs[1]
    assert rc == 0, output
    assert f"keys={TEXT}" in output
    assert report["keys_ready"] == 1
    # Exactly the typed keys: the mouse moved and clicked in between, and
    # its bytes (from the same controller) are no keystrokes.
    assert report["keycodes"] == expected_keycodes(TEXT)


def test_unknown_key_raises_naming_it(devices_run):
    report = devices_run[1]
    assert report["unknown_key"] is not None
    assert "unknown key 'nosuchkey'" in report["unknown_key"]


def test_qmp_is_refused_clearly_while_scripts_start(devices_run):
    assert "does not run yet while start-up scripts initialise" in devices_run[1]["qmp_at_start"]


def test_screenshot_is_a_png_of_the_text_mode_display(devices_run):
    report = devices_run[1]
    with open(report["screenshot"], "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    # The guest's console is VGA text mode 80x25 with 9x16 character cells.
    assert (width, height) == (720, 400)


def test_nic_send_delivers_exactly_the_sent_datagrams(devices_run):
    report, outputs = devices_run[1], devices_run[2]
    output, rc = outputs[2]
    assert rc == 0, output
    printed = [l.split("=", 1)[1] for l in output if l.startswith("sent=")]
    assert printed == [sent_payload(i).hex() for i in range(SENT)]
    frames = udp_frames(report["send"], 9, to_port=True)
    assert [udp_payload_of(f) for f in frames] == [sent_payload(i) for i in range(SENT)]
    for frame in frames:
        # Whole frames: Ethernet (from the guest's MAC) + IPv4 + UDP + payload.
        assert frame[6:12] == GUEST_MAC
        assert len(frame) == 14 + 20 + 8 + PAYLOAD_LEN


def hexdump_lines(data: bytes) -> str:
    """The dump format of the hexdump module PyREBox scripts use: offset,
    16 bytes in two groups of 8 (uppercase hex), then the printable ASCII."""
    lines = []
    for at in range(0, len(data), 16):
        chunk = data[at:at + 16]
        hexes = " ".join(f"{b:02X}" for b in chunk[:8])
        if len(chunk) > 8:
            hexes += "  " + " ".join(f"{b:02X}" for b in chunk[8:])
        text = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in chunk)
        lines.append(f"{at:08X}: {hexes:<48}  {text}")
    return "\n".join(lines)


def test_a_nic_script_using_hexdump_dumps_exactly_the_sent_frames(devices_run):
    report, stdout = devices_run[1], devices_run[4]
    frames = [bytes.fromhex(f) for f in report["send"]]
    assert len(frames) >= SENT and len(report["send_dumps"]) == len(frames)
    assert report["send_dumps"] == [hexdump_lines(f) for f in frames]
    udp = udp_frames(report["send"], 9, to_port=True)
    dump = report["send_dumps"][[bytes.fromhex(f) for f in report["send"]].index(udp[0])]
    assert f"frame of {len(udp[0])} bytes sent:" in stdout
    assert "\n".join(f"[scripts.devices_probe] {line}" for line in dump.splitlines()) in stdout


def test_nic_rec_delivers_the_frames_the_guest_socket_reads(devices_run):
    report, outputs = devices_run[1], devices_run[2]
    output = outputs[2][0]
    read_by_guest = [bytes.fromhex(l.split("=", 1)[1]) for l in output if l.startswith("recv=")]
    assert read_by_guest == [incoming_payload(j) for j in range(RECEIVED)]
    frames = udp_frames(report["recv"], GUEST_PORT, to_port=True)
    assert [udp_payload_of(f) for f in frames] == read_by_guest
    for frame in frames:
        assert frame[0:6] == GUEST_MAC
    # QMP works from the NIC callbacks' thread too.
    assert report["qmp_thread_ok"] is True
    # The old-style callback saw every received frame too.
    assert report["recv_old_style"] == len(report["recv"])
    assert report["udp_ready"] == 1


def test_nic_callback_without_a_nic_warns(tmp_cwd):
    write(tmp_cwd / "scripts" / "__init__.py", "")
    write(tmp_cwd / "scripts" / "nic_alone.py", """
        from api import CallbackManager
        def initialize_callbacks(module_hdl, printer):
            cm = CallbackManager(module_hdl)
            cm.add_callback(CallbackManager.NIC_SEND_CB, lambda addr, size, buf: None,
                            name="tx")
            cm.add_callback(CallbackManager.KEYSTROKE_CB, lambda keycode: None, name="keys")
            printer("registered")
        def clean():
            pass
        """)
    conf = write(tmp_cwd / "pyrebox.conf", "[MODULES]\nscripts.nic_alone: True\n")
    result = run_plugin_only("x86_64", f"conf={conf}")
    assert "[scripts.nic_alone] registered" in result.stderr, result.stderr
    assert "NIC_SEND_CB callback 'tx' of " in result.stderr
    assert "is registered, but this VM has no NIC PyREBox observes" in result.stderr
    assert "pyrebox run --nic MODEL" in result.stderr
    assert "KEYSTROKE_CB" not in result.stderr  # the keyboard needs no set-up
