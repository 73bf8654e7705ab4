"""The six input/output layouts: univariate or multivariate input, one or several targets,
one step or many ahead."""

from __future__ import annotations

LAYOUTS = (
    "univariate",
    "multivariate",
    "multi_output",
    "univariate_multi_step",
    "multivariate_multi_step",
    "multi_output_multi_step",
)


def infer_layout(features: list[str], targets: list[str], horizon: int) -> str:
    if len(targets) > 1:
        base = "multi_output"
    elif list(features) == list(targets):
        base = "univariate"
    else:
        base = "multivariate"
    return base if horizon == 1 else f"{base}_multi_step"
