"""The console's guest agent commands, for a running VM:
    put HOST GUEST   copy a host file into the guest (its folder is made)
    get GUEST HOST   copy a guest file to the host
    exec CMD         run `/bin/sh -c CMD` in the guest: its output, its exit status

They speak to qemu-guest-agent in the guest (pyrebox.guest_agent) over the
agent channel the launcher adds to an --image run: the Unix socket
AGENT_SOCKET in the run directory, beside the console's socket. One
connection per command: the channel takes one client at a time, and the
launcher's own copies (--file) may hold it briefly. Each command returns the
text to show; AgentError says what failed, and the VM runs on.
"""

from __future__ import annotations

import os
import shlex

from .guest_agent import AGENT_SOCKET, NO_AGENT, AgentError, GuestAgent
EXEC_TIMEOUT = 300.0   # seconds an `exec` may run before the console gives it up
CONNECT_WAIT = 10.0    # seconds for the agent to answer a connection
GET_LIMIT = 1 << 30    # bytes `get` copies at most

USAGE = {
    "put": "put HOST GUEST: copy a host file into the running guest (guest agent)",
    "get": "get GUEST HOST: copy a guest file to the host (guest agent)",
    "exec": "exec CMD: run CMD in the guest with /bin/sh -c; its output and exit status",
}


def agent_socket(run_dir: str) -> str | None:
    """The agent channel's socket of the run in `run_dir`, None when the VM
    has none."""
    path = os.path.join(run_dir, AGENT_SOCKET)
    return path if os.path.exists(path) else None


def _agent(run_dir: str) -> GuestAgent:
    path = agent_socket(run_dir)
    if path is None:
        raise AgentError("this VM has no guest agent channel: files and commands reach a VM "
                         "started with pyrebox run --image DISK (with qemu-guest-agent "
                         "installed in it), or the default guest started with pyrebox run "
                         "--agent")
    agent = GuestAgent(path, timeout=30.0)
    try:
        agent.connect(wait=CONNECT_WAIT)
    except AgentError:
        raise AgentError(f"{NO_AGENT} (no answer within {CONNECT_WAIT:g} s; while the guest "
                         f"boots, try again once it is up)") from None
    return agent


def run(run_dir: str, word: str, rest: str) -> str:
    """One console line `word rest`; the text to show."""
    if word == "exec":
        if not rest:
            return f"usage: {USAGE[word]}\n"
        return _exec(run_dir, rest)
    args = shlex.split(rest)
    if len(args) != 2:
        return f"usage: {USAGE[word]}\n"
    return (_put if word == "put" else _get)(run_dir, *args)


def _put(run_dir: str, host: str, guest: str) -> str:
    host = os.path.expanduser(host)
    if not os.path.isfile(host):
        raise AgentError(f"host file {host} not found")
    if not guest.startswith("/"):
        raise AgentError(f"the guest path {guest} must be absolute")
    agent = _agent(run_dir)
    try:
        size = agent.put_file(host, guest)
    finally:
        agent.close()
    return f"copied {host} to the guest's {guest} ({size} bytes)\n"


def _get(run_dir: str, guest: str, host: str) -> str:
    host = os.path.expanduser(host)
    if os.path.isdir(host):
        host = os.path.join(host, os.path.basename(guest))
    agent = _agent(run_dir)
    try:
        data = agent.get(guest, limit=GET_LIMIT)
    finally:
        agent.close()
    with open(host, "wb") as f:
        f.write(data)
    return f"copied the guest's {guest} to {host} ({len(data)} bytes)\n"


def _exec(run_dir: str, command: str) -> str:
    agent = _agent(run_dir)
    try:
        code, signal_number, out, err = agent.exec_status(["/bin/sh", "-c", command],
                                                          timeout=EXEC_TIMEOUT)
    finally:
        agent.close()
    text = (out + err).decode("utf-8", "backslashreplace")
    if text and not text.endswith("\n"):
        text += "\n"
    ended = (f"exit status {code}" if signal_number is None
             else f"killed by signal {signal_number}")
    return text + f"[{ended}]\n"
