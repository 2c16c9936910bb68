"""Command groups of the `evergreen` CLI, one module each, registered by `evergreen.cli`."""

import getpass


def command_actor() -> str:
    """Who a command's ledger rows name: the person at the shell (their login name)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment
        return "unknown-user"
