"""forecast: time-series forecasting with recurrent networks, from one YAML config.

The public Python API lives in :mod:`forecast.api`::

    from forecast import api
    result = api.train("configs/univariate.yaml")
    future = api.predict(result.run_dir, "data/msft_daily.csv", horizon=5)
"""

__version__ = "0.1.0"
