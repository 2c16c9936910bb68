"""Command groups of the `evergreen` CLI, one module each, registered by `evergreen.cli`."""
