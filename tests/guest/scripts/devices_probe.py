"""Keyboard, NIC and screen under test (tests/guest/test_devices.py).

Reads devices_probe.json (cwd): the addresses of pyrebox_keys_ready and
pyrebox_udp_ready, the text to type, the host port forwarded to the guest's
UDP port and the datagrams to send through it. When `keys` is ready it takes
a screenshot, moves and clicks the mouse (mouse bytes must not become
keystrokes), tries an unknown key, and types the text with api.send_key,
from the vCPU callback. When `udp_peer` listens it sends the datagrams from
the host. Each sent frame is also dumped with the hexdump module, as
PyREBox's NIC test does. clean() prints one RESULT line (JSON) with
everything seen.
"""

import json
import os
import socket

import hexdump

import api
from api import CallbackManager

cm = None
conf = {}
report = {"keycodes_before_ready": 0, "keycodes": [], "keys_ready": 0, "udp_ready": 0,
          "send": [], "send_dumps": [], "recv": [], "recv_old_style": 0, "errors": [], "unknown_key": None,
          "screenshot": None, "qmp_thread_ok": None}
printer = print


def on_keystroke(params):
    if report["keys_ready"]:
        report["keycodes"].append(params["keycode"])
    else:
        report["keycodes_before_ready"] += 1


def on_send(params):
    assert params["buf"] is params["buff"] and params["size"] == len(params["buf"])
    assert params["addr"] == 0
    report["send"].append(params["buf"].hex())
    # As PyREBox's NIC test does: the frame through the hexdump module.
    dump = hexdump.hexdump(params["buf"], result="return")
    report["send_dumps"].append(dump)
    printer(f"frame of {params['size']} bytes sent:\n{dump}")


def on_recv(params):
    assert params["buf"] is params["buff"] and params["cur_pos"] == params["curr"] == 0
    report["recv"].append(params["buf"].hex())
    if report["qmp_thread_ok"] is None:
        # QMP from the NIC callbacks' thread (not a vCPU thread).
        try:
            api.screenshot("nic-thread.png")
            report["qmp_thread_ok"] = os.path.getsize("nic-thread.png") > 0
        except Exception as e:  # noqa: BLE001
            report["qmp_thread_ok"] = f"{type(e).__name__}: {e}"


def on_recv_old(buf, size, cur_pos, start, stop):
    assert size == len(buf) and (cur_pos, start, stop) == (0, 0, 0)
    report["recv_old_style"] += 1


def key_name(char):
    if char == " ":
        return "spc"
    if char.isupper():
        return "shift-" + char.lower()
    return char


def on_keys_ready(params):
    report["keys_ready"] += 1
    try:
        path = os.path.abspath("screen.png")
        api.screenshot(path)
        report["screenshot"] = path
        api.mouse_move(7, -3, 0)
        api.mouse_button(1)
        api.mouse_button(0)
        try:
            api.send_key("ctrl-nosuchkey")
        except ValueError as e:
            report["unknown_key"] = str(e)
        for char in conf["text"]:
            api.send_key(key_name(char), hold_time=20)
    except Exception as e:  # noqa: BLE001
        report["errors"].append(f"keys_ready: {type(e).__name__}: {e}")


def on_udp_ready(params):
    report["udp_ready"] += 1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for payload in conf["incoming"]:
            s.sendto(bytes.fromhex(payload), ("127.0.0.1", conf["hostport"]))


def initialize_callbacks(module_hdl, script_printer):
    global cm, printer
    printer = script_printer
    with open("devices_probe.json") as f:
        conf.update(json.load(f))
    cm = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.KEYSTROKE_CB, on_keystroke, name="keys")
    cm.add_callback(CallbackManager.NIC_SEND_CB, on_send, name="send")
    cm.add_callback(CallbackManager.NIC_REC_CB, on_recv, name="recv")
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_keys_ready, addr=conf["keys_ready"])
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_udp_ready, addr=conf["udp_ready"])
    old = CallbackManager(module_hdl)
    old.add_callback(CallbackManager.NIC_REC_CB, on_recv_old, name="recv_old")
    try:
        api.screenshot("too-early.png")
    except api.QmpError as e:
        report["qmp_at_start"] = str(e)
    printer("devices probe ready")


def clean():
    printer("RESULT " + json.dumps(report))
    if cm is not None:
        cm.clean()
