"""Specific exceptions with messages a user can act on.

Each names what is at fault (the config key, the file and row, the table and column) so
that the person reading it knows what to change. The CLI maps them to exit codes.
"""

__all__ = ["ForecasterError", "ConfigError", "SourceError", "EmptySourceError", "ShortReadError"]


class ForecasterError(Exception):
    """Base class for errors the CLI reports without a traceback."""

    exit_code = 1


class ConfigError(ForecasterError):
    """The configuration is invalid; raised before any work starts."""

    exit_code = 2


class SourceError(ForecasterError):
    """A data source cannot be read: unreachable, missing table or column, wrong format."""

    exit_code = 2


class OutputError(ForecasterError):
    """An output file cannot be written (output.dir missing rights, a file where a folder must be, a full disk)."""

    exit_code = 2


class EmptySourceError(SourceError):
    """A source was read but holds nothing usable (no communities, no tickets or surveys)."""


class ShortReadError(SourceError):
    """A source delivered far less than it usually does (every row rejected, an empty export, a
    cut-short table): the night is refused so that the saved day totals are not overwritten."""
