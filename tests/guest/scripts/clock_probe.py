"""Guest time across long callbacks: at clock_probe's pyrebox_clock_probe
(its address from clock_probe.json in the working directory) phase 1
sleeps 2 s as it is, phase 2 sleeps 2 s inside api.guest_clock_stopped()
(with a nested block, as a script calling api.vol would)."""

import json
import os
import time

import api
from api import CallbackManager

cm = None
with open(os.path.join(os.getcwd(), "clock_probe.json")) as f:
    PROBE = json.load(f)["probe"]
SLEEP = 2.0


def on_probe(cpu_index, cpu):
    if cpu.RDI == 1:
        time.sleep(SLEEP)
    elif cpu.RDI == 2:
        with api.guest_clock_stopped():
            time.sleep(SLEEP / 2)
            with api.guest_clock_stopped():
                time.sleep(SLEEP / 2)


def initialize_callbacks(module_hdl, printer):
    global cm
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_probe, addr=PROBE, name="probe")


def clean():
    cm.clean()
