"""Errors that mean "the user gave us something we cannot use".

The CLI turns every ForecastError into one line on stderr and exit code 2.
Anything else is a bug (exit code 1).
"""


class ForecastError(Exception):
    """Base class: a user error with a message that names what is wrong and how to fix it."""


class ConfigError(ForecastError):
    """The YAML config (or a --set override) is invalid."""


class DataError(ForecastError):
    """A CSV file cannot be used as asked (missing column, bad value, too few rows...)."""


class RunError(ForecastError):
    """A run directory is missing, incomplete or incompatible."""
