"""Per-column scaling fitted on training rows only, saved as JSON (no pickle).

Every method is an affine map per column, `scaled = value * scale + offset`, so the inverse
is exact and cheap, and a subset of columns (the targets) can be inverted on its own.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast.errors import RunError

FORMAT_VERSION = 1
TINY = np.finfo(np.float64).tiny  # smallest normal float64


@dataclass
class Scaler:
    method: str  # minmax | standard | none
    columns: list[str]
    scale: np.ndarray  # (columns,)
    offset: np.ndarray  # (columns,)
    feature_range: tuple[float, ...] = (0.0, 1.0)  # low, high
    data_min: np.ndarray | None = None  # (columns,) training rows only
    data_max: np.ndarray | None = None

    @classmethod
    def fit(
        cls,
        values: np.ndarray,  # (rows, columns): training rows only
        columns: list[str],
        method: str = "minmax",
        feature_range: tuple[float, float] = (0.0, 1.0),
    ) -> Scaler:
        values = np.asarray(values, dtype=np.float64)
        data_min, data_max = values.min(axis=0), values.max(axis=0)
        if method == "minmax":
            low, high = feature_range
            span = data_max - data_min
            # a constant column maps to `low` instead of dividing by zero (a subnormal span,
            # e.g. 5e-324, counts as constant: its reciprocal overflows)
            scale = (high - low) / np.where(span > TINY, span, 1.0)
            offset = low - data_min * scale
        elif method == "standard":
            mean, std = values.mean(axis=0), values.std(axis=0)
            scale = 1.0 / np.where(std > TINY, std, 1.0)
            offset = -mean * scale
        elif method == "none":
            scale, offset = np.ones(values.shape[1]), np.zeros(values.shape[1])
        else:
            raise ValueError(f"unknown scaling method {method!r}")
        return cls(method, list(columns), scale, offset, tuple(feature_range), data_min, data_max)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(..., columns) -> same shape, scaled."""
        return np.asarray(values, dtype=np.float64) * self.scale + self.offset

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        """(..., columns) -> same shape, in original units."""
        return (np.asarray(scaled, dtype=np.float64) - self.offset) / self.scale

    def subset(self, columns: list[str]) -> Scaler:
        """The scaler of some columns only, e.g. the targets, in that order."""
        idx = [self.columns.index(c) for c in columns]

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[idx]

        return Scaler(
            self.method,
            list(columns),
            self.scale[idx],
            self.offset[idx],
            self.feature_range,
            pick(self.data_min),
            pick(self.data_max),
        )

    def to_dict(self) -> dict:
        per_column = {}
        for i, name in enumerate(self.columns):
            entry = {"scale": float(self.scale[i]), "offset": float(self.offset[i])}
            if self.data_min is not None and self.data_max is not None:
                entry |= {"min": float(self.data_min[i]), "max": float(self.data_max[i])}
            per_column[name] = entry
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "feature_range": list(self.feature_range),
            "formula": "scaled = value * scale + offset",
            "columns": per_column,
        }

    @classmethod
    def from_dict(cls, data: dict, source: str = "scaler.json") -> Scaler:
        try:
            columns = list(data["columns"])
            scale = np.array([data["columns"][c]["scale"] for c in columns], dtype=np.float64)
            offset = np.array([data["columns"][c]["offset"] for c in columns], dtype=np.float64)
            method = str(data["method"])
            feature_range = tuple(float(v) for v in data.get("feature_range", (0.0, 1.0)))
            entries = [data["columns"][c] for c in columns]
            known = all("min" in e and "max" in e for e in entries)
            data_min = np.array([e["min"] for e in entries], dtype=np.float64) if known else None
            data_max = np.array([e["max"] for e in entries], dtype=np.float64) if known else None
        except (KeyError, TypeError, ValueError) as exc:
            raise RunError(
                f"{source}: corrupt scaler file ({exc!r}); train the run again"
            ) from None
        if not all(math.isfinite(v) for v in [*scale, *offset]) or np.any(scale == 0):
            raise RunError(f"{source}: corrupt scaler file (bad scale); train the run again")
        return cls(method, columns, scale, offset, feature_range, data_min, data_max)

    def save(self, path: Path) -> None:
        """scaler.json, written beside and renamed, so no reader sees half of it."""
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Scaler:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(f"{path}: missing; the run is incomplete, train it again") from None
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: unreadable scaler ({exc}); train the run again") from None
        return cls.from_dict(data, source=str(path))
