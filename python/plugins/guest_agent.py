"""PyREBox's guest agent plugin: `from plugins.guest_agent import guest_agent`
(load it first: `plugins.guest_agent: True` in [MODULES], or
`requirements = ["plugins.guest_agent"]` in the script). On QEMU's guest
agent: see pyrebox.agent_plugin and docs/own-vm.md."""

from pyrebox.agent_plugin import GuestAgentPlugin, clean, guest_agent, initialize_callbacks  # noqa: F401

__all__ = ["GuestAgentPlugin", "guest_agent", "initialize_callbacks", "clean"]
