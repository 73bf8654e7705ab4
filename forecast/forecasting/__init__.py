"""Forecasts in original units, prediction intervals, scores against the baselines."""
