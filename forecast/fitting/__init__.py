"""Fit one model on one slice of data (the unit of work) and run lists of such tasks."""
