"""Errors users see. Each message names the file, row, column or key at fault and says what to do."""


class HftlError(RuntimeError):
    """Base class of hftl's user-facing errors (the CLI prints them without a traceback)."""


class ConfigError(HftlError, ValueError):
    """Unknown key, wrong type or invalid value in a config; names the key and its origin."""


class DataError(HftlError, ValueError):
    """A data source that cannot be used as asked: missing column or split, unknown label, unreadable file."""


class InputTooLarge(DataError):
    """One input past a size limit (a served request's text length, image pixels, audio seconds)."""


class ModelError(HftlError):
    """A model source that cannot be loaded or adapted as asked."""


class RunDirError(HftlError):
    """An output directory that would lose work if written to."""


class ExportError(HftlError):
    """An export gate failed; ``report`` holds the numbers measured so far (or None)."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


class HubError(HftlError):
    """A push that cannot happen: no token, offline, unreachable Hub, refused write, or a run missing what is pushed."""


class ZooError(HftlError):
    """A zoo entry is unknown, or could not be fetched, verified or built."""
