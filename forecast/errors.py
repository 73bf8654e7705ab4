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


def excerpt(value: object, limit: int = 80) -> str:
    """`repr(value)`, cut to `limit` characters with '...': how a message echoes a value the
    user gave, which may be a whole file's worth (a long string, a list of thousands).
    Containers are abbreviated as they are written (reprlib), so a huge value costs no
    more than a short one."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxdict = 3, 4
    short.maxlist = short.maxtuple = short.maxset = short.maxfrozenset = 8
    short.maxstring = short.maxother = short.maxlong = limit
    try:
        text = short.repr(value)
    except ValueError:  # an integer too long for Python to write out
        text = f"an integer of {int(value.bit_length() * 0.30103)} digits"  # type: ignore[attr-defined]
    return shorten(text, limit)


def shorten(text: str, limit: int = 80) -> str:
    """`text`, cut to `limit` characters with '...' (names joined from a long list, say)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
