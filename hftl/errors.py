"""Errors users see. Each message names the file, row, column or key at fault and says what to do."""


class HftlError(RuntimeError):
    """Base class of hftl's user-facing errors (the CLI prints them without a traceback)."""


class ConfigError(HftlError, ValueError):
    """Unknown key, wrong type or invalid value in a config; names the key and its origin."""


class DataError(HftlError, ValueError):
    """A data source that cannot be used as asked: missing column or split, unknown label, unreadable file."""


class ModelError(HftlError):
    """A model source that cannot be loaded or adapted as asked."""


class RunDirError(HftlError):
    """An output directory that would lose work if written to."""
