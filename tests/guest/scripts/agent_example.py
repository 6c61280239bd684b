"""A script in the style of PyREBox's example scripts: it requires the guest
agent plugin, copies a host file into the guest and runs it from
initialize_callbacks, then stops the agent. The test writes payload.sh
beside pyrebox.conf; the guest's command waits for what it writes."""

import json
import os

import utils
from api import CallbackManager

requirements = ["plugins.guest_agent"]

HERE = os.path.dirname(os.path.abspath(__file__))
PAYLOAD = os.path.join(HERE, "..", "payload.sh")

cm = None
pyrebox_print = None


def new_proc(pid, pgd, name):
    if name == "agent_payload":
        # The guest's own view of it, through utils.find_procs (pid in hex).
        found = [list(p) for p in utils.find_procs("%x" % pid)]
        pyrebox_print("CREATEPROC " + json.dumps([pid, pgd, name, found]))


def initialize_callbacks(module_hdl, printer):
    global cm, pyrebox_print
    from plugins.guest_agent import guest_agent
    pyrebox_print = printer
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, new_proc, name="vmi_new_proc")
    pyrebox_print("Copying host file to guest, using agent...")
    guest_agent.copy_file(PAYLOAD, "/root/agent_payload")
    guest_agent.execute_file("/root/agent_payload", ["one", "two words"],
                             {"PAYLOAD_ENV": "from the host"})
    guest_agent.print_command_list()
    guest_agent.stop_agent()
    try:
        guest_agent.copy_file(PAYLOAD, "/root/too_late")
    except Exception as e:
        pyrebox_print("AFTER STOP " + type(e).__name__ + ": " + str(e))
    utils.pp_print("platform %s, modules %s\n", utils.ConfigurationManager.platform,
                   ",".join(utils.ConfigurationManager.config.options("MODULES")))


def clean():
    cm.clean()
