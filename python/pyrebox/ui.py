"""Keyboard, mouse and screen of the VM, for scripts: PyREBox's send_key,
mouse_move, mouse_button and screenshot, through QMP (see qmp.py for which
threads may call them).

Key names are QEMU's (its QKeyCode names, as in the monitor's `sendkey`):
letters `a`..`z`, digits `0`..`9`, `spc`, `ret`, `tab`, `minus`, `dot`,
`shift`, `ctrl`, `alt`, `f1`..., `kp_0`..., or a number `0x..` for a raw
keycode. A combination joins names with `-` (`ctrl-alt-delete`).
"""

from __future__ import annotations

import os

from . import qmp

# QEMU's QKeyCode names (QEMU 10).
KEY_NAMES = frozenset("""
unmapped shift shift_r alt alt_r ctrl ctrl_r menu esc 1 2 3 4 5 6 7 8 9 0 minus equal
backspace tab q w e r t y u i o p bracket_left bracket_right ret a s d f g h j k l
semicolon apostrophe grave_accent backslash z x c v b n m comma dot slash asterisk spc
caps_lock f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 num_lock scroll_lock kp_divide kp_multiply
kp_subtract kp_add kp_enter kp_decimal sysrq kp_0 kp_1 kp_2 kp_3 kp_4 kp_5 kp_6 kp_7 kp_8
kp_9 less f11 f12 print home pgup pgdn end left up down right insert delete stop again
props undo front copy open paste find cut lf help meta_l meta_r compose pause ro hiragana
henkan yen muhenkan katakanahiragana kp_comma kp_equals power sleep wake audionext
audioprev audiostop audioplay audiomute volumeup volumedown mediaselect mail calculator
computer ac_home ac_back ac_forward ac_refresh ac_bookmarks lang1 lang2 f13 f14 f15 f16
f17 f18 f19 f20 f21 f22 f23 f24
""".split())

# mouse_button's state bits, as in the monitor's `mouse_button` (1=L, 2=M, 4=R).
_BUTTON_BITS = (("left", 1), ("middle", 2), ("right", 4))
_buttons_down = 0


def _key_value(name: str) -> dict:
    if name.lower().startswith("0x"):
        try:
            return {"type": "number", "data": int(name, 16)}
        except ValueError:
            pass
    elif name.lower() in KEY_NAMES:
        return {"type": "qcode", "data": name.lower()}
    raise ValueError(f"send_key: unknown key {name!r} (QEMU key names such as a, 1, spc, "
                     f"ret, shift, ctrl, alt, f1, kp_0, or a keycode 0x..)")


def send_key(keys, hold_time: int = -1) -> None:
    """Presses the keys of one combination together (in order) and releases
    them (in reverse order) `hold_time` ms later (-1: QEMU's default, 100 ms).
    `keys` is a string such as "a", "shift-a" or "ctrl-alt-delete", or a list
    of key names. Returns once QEMU has queued the events; keys sent by later
    calls follow these. Raises ValueError naming an unknown key."""
    if isinstance(keys, str):
        names = keys.split("-") if keys != "-" else ["-"]
    elif isinstance(keys, (list, tuple)) and all(isinstance(k, str) for k in keys):
        names = list(keys)
    else:
        raise TypeError(f"send_key: keys must be a str like 'ctrl-alt-delete' or a list of "
                        f"key names, got {keys!r}")
    if not names or any(not n for n in names):
        raise ValueError(f"send_key: no key in {keys!r}")
    values = [_key_value(n) for n in names]
    if not isinstance(hold_time, int) or (hold_time < 0 and hold_time != -1):
        raise ValueError(f"send_key: hold_time must be milliseconds >= 0, or -1, "
                         f"got {hold_time!r}")
    arguments = {"keys": values}
    if hold_time >= 0:
        arguments["hold-time"] = hold_time
    qmp.command("send-key", **arguments)


def mouse_move(dx: int, dy: int, dz: int = 0) -> None:
    """Moves the mouse by (dx, dy); dz turns the wheel (negative: up), one
    notch per call, as the monitor's `mouse_move`."""
    for label, value in (("dx", dx), ("dy", dy), ("dz", dz)):
        if not isinstance(value, int):
            raise TypeError(f"mouse_move: {label} must be an int, got {value!r}")
    events = [{"type": "rel", "data": {"axis": "x", "value": dx}},
              {"type": "rel", "data": {"axis": "y", "value": dy}}]
    qmp.command("input-send-event", events=events)
    if dz:
        button = "wheel-up" if dz < 0 else "wheel-down"
        for down in (True, False):
            qmp.command("input-send-event",
                        events=[{"type": "btn", "data": {"down": down, "button": button}}])


def mouse_button(state: int) -> None:
    """Sets the mouse buttons to `state`: a bit mask, 1 left, 2 middle,
    4 right (0 releases all), as the monitor's `mouse_button`."""
    global _buttons_down
    if not isinstance(state, int) or not 0 <= state <= 7:
        raise ValueError(f"mouse_button: state must be a mask of 1 (left), 2 (middle), "
                         f"4 (right), got {state!r}")
    events = [{"type": "btn", "data": {"down": bool(state & bit), "button": name}}
              for name, bit in _BUTTON_BITS if (state ^ _buttons_down) & bit]
    if events:
        qmp.command("input-send-event", events=events)
    _buttons_down = state


def screenshot(filename: str) -> None:
    """Writes the VM's display as a PNG file (the display's current mode:
    720x400 for an 80x25 VGA text console, the resolution set by the guest
    for a graphical one). A relative path is relative to the current folder."""
    if not isinstance(filename, (str, os.PathLike)) or not str(filename):
        raise ValueError(f"screenshot: filename must be a path, got {filename!r}")
    qmp.command("screendump", filename=os.path.abspath(filename), format="png")


QmpError = qmp.QmpError

__all__ = ["send_key", "mouse_move", "mouse_button", "screenshot", "QmpError"]
