"""Subcommands of the `mixdown` CLI, one module per feature (see `mixdown.cli`)."""
