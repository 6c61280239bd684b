"""The console's put, get and exec in the default guest: `pyrebox run
--agent` adds the agent's virtio-serial port and the guest's init starts
qemu-ga (the machine's, copied into the guest) on it. Without --agent the
commands say the VM has no agent channel."""

from __future__ import annotations

import os

import pytest

from own_vm.vm import Console


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    console = Console(tmp_path_factory.mktemp("default_agent"), "--agent")
    yield console
    console.close()


def test_exec_runs_in_the_default_guest(agent):
    shown = agent.until_agent("exec cat /proc/cmdline; hostname")
    assert shown.endswith("pyrebox-guest\n[exit status 0]\n"), shown
    assert " pyrebox.agent" in shown.splitlines()[0]
    assert agent.line("exec static_loop 10 | tail -1; exit 4") == (
        f"checksum={sum((i * 7 + 3) & 0xff for i in range(10))}\n[exit status 4]\n")


def test_put_and_get_round_trip(agent, tmp_path):
    agent.until_agent("exec true")
    blob = os.urandom(200_000)
    host = tmp_path / "blob"
    host.write_bytes(blob)
    assert agent.line(f"put {host} /tmp/x/blob") == \
        f"copied {host} to the guest's /tmp/x/blob (200000 bytes)\n"
    back = tmp_path / "back"
    assert agent.line(f"get /tmp/x/blob {back}") == \
        f"copied the guest's /tmp/x/blob to {back} (200000 bytes)\n"
    assert back.read_bytes() == blob


def test_without_agent_the_commands_say_so(tmp_path):
    console = Console(tmp_path)
    try:
        shown = console.line("exec true")
        assert shown == ("exec: this VM has no guest agent channel: files and commands reach a "
                         "VM started with pyrebox run --image DISK (with qemu-guest-agent "
                         "installed in it), or the default guest started with pyrebox run "
                         "--agent\n"), shown
    finally:
        console.close()
