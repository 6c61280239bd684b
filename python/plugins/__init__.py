"""PyREBox's plugins for scripts (`plugins.guest_agent`)."""
