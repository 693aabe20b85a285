"""Subcommands of `panovlm`, registered by panovlm.cli."""
