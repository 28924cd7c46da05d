"""User-facing errors. Each message names the file, record or option at fault and what to do."""


class ClarifyLabError(Exception):
    """Base class: entry points print these without a traceback."""


class DataFormatError(ClarifyLabError, ValueError):
    """A data file is malformed; the message names the file and the record (line)."""


class DataNotFoundError(ClarifyLabError, FileNotFoundError):
    """A data file or directory is missing; the message names the path and the option that set it."""


class ConfigError(ClarifyLabError, ValueError):
    """A configuration value is invalid; the message names the option."""
