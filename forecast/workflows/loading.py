"""A config as the commands load it: the file with its `--set` overrides and `--seed`, or a
Config object revalidated; where the config alone misleads, checked against the CSV's header
(a misspelt column is named, with the one meant)."""

from __future__ import annotations

from pathlib import Path

from forecast.config.file import read_config, revalidate, validate_config
from forecast.config.schema import Config
from forecast.data.reading import column_typo
from forecast.errors import ConfigError


def resolve_config(
    config: Config | str | Path, overrides: list[str] | None = None, seed: int | None = None
) -> Config:
    """A validated Config from a file (with `--set` overrides and `--seed`) or a Config
    object (revalidated). A file is checked against the data where the config alone
    misleads: a misspelt column makes features and targets disagree with a given layout,
    so the error names the column and the one meant (from the CSV's header), not the
    layout. The config layer reads no data; this is the loader the commands use."""
    if isinstance(config, Config):
        if overrides:
            raise ConfigError("overrides apply to a config file; edit the Config object instead")
        return revalidate(config) if seed is None else revalidate(config, seed=seed)
    raw, sources = read_config(config, overrides, seed)
    try:
        return validate_config(raw, source=str(config), sources=sources)
    except ConfigError as exc:
        typo = column_typo(raw.get("data")) if "layout" in str(exc) else None
        if typo:
            raise ConfigError(typo) from None
        raise
