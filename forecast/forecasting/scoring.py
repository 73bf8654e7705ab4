"""Scores of a trained model on its test rows: per series, and the mean over many series."""

from __future__ import annotations

from typing import Any

import numpy as np


def mean_reports(reports: list[Any]) -> Any:
    """The mean over series of every number in reports of the same shape (dicts, lists,
    numbers); a number missing (null) in some series is the mean of the others, null where
    it is null in all; text (a reason) is kept from the first report that has it."""
    present = [r for r in reports if r is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, dict):
        keys = list(dict.fromkeys(k for r in present if isinstance(r, dict) for k in r))
        return {k: mean_reports([r.get(k) for r in present if isinstance(r, dict)]) for k in keys}
    if isinstance(first, list):
        length = min(len(r) for r in present)
        return [mean_reports([r[i] for r in present]) for i in range(length)]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        return first
    numbers = [r for r in present if isinstance(r, (int, float)) and not isinstance(r, bool)]
    if all(n == numbers[0] for n in numbers):
        return numbers[0]  # the same in every series (a step number, a season length)
    return float(np.mean(numbers))
