"""PyREBox's guest agent plugin (plugins.guest_agent) on qemu-guest-agent in
the default guest (`pyrebox run --agent`): a script in PyREBox's style
(tests/guest/scripts/agent_example.py) copies a host file in and runs it;
the guest's command waits for what the program writes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, run_pyrebox, write

pytestmark = pytest.mark.guest

HERE = os.path.dirname(os.path.abspath(__file__))

PAYLOAD = """#!/bin/sh
echo "payload pid=$$ args=$1|$2 env=$PAYLOAD_ENV"
echo "$$|$1|$2|$PAYLOAD_ENV" > /root/payload.tmp
mv /root/payload.tmp /root/payload.out
"""

# Waits (at most 120 s) for the payload's file, then for its exit to be
# reported, and shows the file.
WAIT = ("i=0; while [ ! -f /root/payload.out ] && [ $i -lt 1200 ]; do sleep 0.1; "
        "i=$((i+1)); done; sleep 3; ls -l /root/agent_payload | cut -c1-10; "
        "cat /root/payload.out")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("agent_plugin")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(os.path.join(HERE, "scripts", "agent_example.py"), work / "scripts")
    (work / "payload.sh").write_text(PAYLOAD)
    os.chmod(work / "payload.sh", 0o755)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.agent_example: True\n")
    result = run_pyrebox("run", "--agent", "--conf", conf, "--timeout", "300", "--cmd", WAIT,
                         cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    return result.stdout.splitlines(), command_outputs(result.stdout)[1], work


def test_the_host_file_is_copied_in_and_run_with_its_args_and_env(run):
    lines, (output, rc), work = run
    assert rc == 0
    assert output[0] == "-rwxr-xr-x"  # the host file's mode
    pid, arg1, arg2, env = output[1].split("|")
    assert (arg1, arg2, env) == ("one", "two words", "from the host")
    # (The plugin says once that it waits, when the guest has not booted yet.)
    plugin = [l for l in lines if l.startswith("[plugins.guest_agent] ") and
              l != "[plugins.guest_agent] waiting for the guest agent to answer"]
    assert plugin == [
        "[plugins.guest_agent] [*]    Initializing guest_agent plugin",
        "[plugins.guest_agent] LIST OF COMMANDS",
        "[plugins.guest_agent] ================",
        f"[plugins.guest_agent]     [0] CMD: COPY_FILE - {{'source': '{work / 'payload.sh'}', "
        f"'destiny': '/root/agent_payload'}}",
        "[plugins.guest_agent]     [1] CMD: EXEC_FILE - {'path': '/root/agent_payload', "
        "'args': ['one', 'two words'], 'env': {'PAYLOAD_ENV': 'from the host'}}",
        f"[plugins.guest_agent] copied {work / 'payload.sh'} to the guest's /root/agent_payload "
        f"({len(PAYLOAD)} bytes)",
        f"[plugins.guest_agent] started /root/agent_payload (pid {pid})",
        "[plugins.guest_agent] stop_agent: no more commands are run",
        f"[plugins.guest_agent] /root/agent_payload (pid {pid}) exited with status 0",
        f"[plugins.guest_agent]   payload pid={pid} args=one|two words env=from the host",
    ], plugin


def test_the_script_saw_the_program_start_with_the_same_pid(run):
    lines, (output, _), _ = run
    pid = int(output[1].split("|")[0])
    # The program's exec, then the fork of its shell for mv (named as its
    # parent until mv is exec'd).
    created = [json.loads(l.split("CREATEPROC ", 1)[1]) for l in lines
               if l.startswith("[scripts.agent_example] CREATEPROC ")]
    assert [c[0] for c in created][:1] == [pid] and len(created) == 2, created
    cpid, pgd, name, found = created[0]
    assert name == "agent_payload"
    # The process list has it at that moment, in the same address space.
    assert [f[:2] for f in found] == [[pid, pgd]]


def test_commands_after_stop_agent_are_refused_and_utils_knows_the_run(run):
    lines = run[0]
    assert ("[scripts.agent_example] AFTER STOP AgentError: the guest agent plugin was stopped "
            "(stop_agent()): COPY_FILE {'source': '" in "\n".join(lines))
    assert "[pyrebox] platform x86_64-softmmu, modules scripts.agent_example" in lines
