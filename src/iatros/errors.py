"""User-facing errors: the CLI prints these as one line, without a traceback."""

from __future__ import annotations


class IatrosError(Exception):
    """An error caused by the user's input or environment, with a message that says what to do."""


class MissingDataError(IatrosError):
    """A data file is not in the data root and could not be fetched."""


class CorruptDataError(IatrosError):
    """A data file or record exists but cannot be read as expected."""


class UnknownTaskError(IatrosError):
    """No task is registered under the given name."""


class RunError(IatrosError):
    """A run folder is missing, incomplete, or belongs to another task."""


class ConfigError(IatrosError):
    """An option or setting has a value that cannot be used."""
