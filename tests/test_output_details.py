"""Output details: intervals of a series that never goes below 0 are clipped at 0, forecast
dates of trading-day data continue on business days, and `make install` prints no setuptools
banner."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from forecast.cli import app
from forecast.timesteps import future_index, season_length

from .conftest import ROOT

runner = CliRunner()


def cli(*args: object):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def days(index: pd.Index) -> list[str]:
    return list(index.strftime("%a %Y-%m-%d"))


# --- forecast dates of trading-day data --------------------------------------------------


@pytest.mark.parametrize("rows", [3, 5, 60, 200])
def test_msft_tail_continues_on_business_days(rows):
    """The shipped stock data ends on Friday 2017-11-10; its last 3 rows (Wed-Fri) and last 5
    (Mon-Fri) are a week pandas calls daily, the last 60 hold Labor Day (2017-09-04)."""
    dates = pd.read_csv(ROOT / "data/msft_daily.csv", usecols=["Date"])["Date"].tail(rows)
    index = pd.DatetimeIndex(pd.to_datetime(dates), name="Date")
    assert days(future_index(index, 3)) == ["Mon 2017-11-13", "Tue 2017-11-14", "Wed 2017-11-15"]
    assert season_length(index) == 5


def test_trading_days_stamped_with_a_time_of_day_continue_on_business_days():
    closes = pd.bdate_range("2024-01-02", "2024-03-28").delete(33) + pd.Timedelta(hours=16)
    assert closes[-1].day_name() == "Thursday" and pd.infer_freq(closes) is None  # one holiday
    assert list(future_index(closes, 3).strftime("%a %Y-%m-%dT%H:%M")) == [
        "Fri 2024-03-29T16:00",
        "Mon 2024-04-01T16:00",
        "Tue 2024-04-02T16:00",
    ]


def test_a_daily_series_with_weekends_keeps_calendar_days():
    daily = pd.date_range("2024-01-01", "2024-03-01", freq="D").delete(20)  # a missing day
    assert days(future_index(daily, 3)) == ["Sat 2024-03-02", "Sun 2024-03-03", "Mon 2024-03-04"]
    assert days(future_index(daily[-7:], 2)) == ["Sat 2024-03-02", "Sun 2024-03-03"]
