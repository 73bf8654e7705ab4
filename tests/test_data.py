import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast.config.schema import DataConfig
from forecast.data.missing import fill_missing
from forecast.data.reading import read_series
from forecast.data.timesteps import future_index, season_length
from forecast.errors import DataError

from .conftest import ROOT, monthly_frame, write_csv


def read(path: Path, **kwargs):
    kwargs.setdefault("features", ["sales"])
    return read_series(DataConfig(path=str(path), **kwargs))


def test_reads_columns_with_time_index(monthly_csv: Path):
    series = read(monthly_csv, time_column="date", features=["sales"], targets=["price"])
    assert list(series.frame.columns) == ["sales", "price"]
    assert isinstance(series.index, pd.DatetimeIndex)
    assert series.index[0] == pd.Timestamp("2000-01-01")
    expected = pd.read_csv(monthly_csv)["sales"].to_numpy()
    np.testing.assert_array_equal(series.values[:, 0], expected)


def test_without_time_column_rows_are_steps(monthly_csv: Path):
    series = read(monthly_csv)
    assert list(series.index[:3]) == [0, 1, 2]


def test_gb18030_chinese_headers_are_read_automatically():
    series = read(ROOT / "data/msft_gb18030.csv", time_column="日期", features=["收盘价(元)"])
    reference = pd.read_csv(ROOT / "data/msft_daily.csv")
    np.testing.assert_array_equal(series.values[:, 0], reference["Close"].to_numpy())


def test_utf8_bom_and_semicolons(tmp_path: Path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffdate;sales\n2020-01-01;1.5\n2020-01-02;2.5\n".encode())
    series = read(path, time_column="date")
    assert series.values[:, 0].tolist() == [1.5, 2.5]


def test_missing_column_lists_the_columns(monthly_csv: Path):
    with pytest.raises(DataError, match=r"no column 'Close' .*the columns are: date, sales, price"):
        read(monthly_csv, features=["Close"])


def test_non_numeric_cell_names_column_and_row(tmp_path: Path):
    frame = monthly_frame(10)
    frame["sales"] = frame["sales"].astype(str)
    frame.loc[4, "sales"] = "n/a?"
    path = write_csv(tmp_path / "bad.csv", frame)
    with pytest.raises(DataError, match=r"column 'sales' row 6: 'n/a\?' is not a number"):
        read(path)


def test_bad_time_value_names_row(tmp_path: Path):
    frame = monthly_frame(10)
    frame.loc[2, "date"] = "someday"
    path = write_csv(tmp_path / "bad.csv", frame)
    with pytest.raises(DataError, match=r"column 'date' row 4: 'someday' is not a date"):
        read(path, time_column="date")


def test_unsorted_rows_are_sorted_with_a_warning(tmp_path: Path, caplog):
    frame = monthly_frame(10).iloc[::-1]
    path = write_csv(tmp_path / "rev.csv", frame)
    with caplog.at_level(logging.WARNING, logger="forecast"):
        series = read(path, time_column="date")
    assert series.index.is_monotonic_increasing
    assert series.values[0, 0] == frame["sales"].iloc[-1]
    assert "not in time order" in caplog.text


def test_duplicate_timestamps_are_an_error(tmp_path: Path):
    frame = monthly_frame(10)
    frame.loc[5, "date"] = frame.loc[4, "date"]
    with pytest.raises(DataError, match="duplicate time"):
        read(write_csv(tmp_path / "dup.csv", frame), time_column="date")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("drop", [1.0, 3.0]), ("ffill", [1.0, 1.0, 3.0]), ("interpolate", [1.0, 2.0, 3.0])],
)
def test_missing_value_policies(tmp_path: Path, policy, expected):
    path = tmp_path / "gap.csv"
    path.write_text("t,sales\n0,1\n1,\n2,3\n", encoding="utf-8")
    series = read(path, time_column="t", missing=policy)
    # interpolation waits for the split (fill_missing); one part here: the whole file
    assert fill_missing(series.values, [3])[:, 0].tolist() == expected


def test_missing_value_is_an_error_by_default(tmp_path: Path):
    path = tmp_path / "gap.csv"
    path.write_text("t,sales\n0,1\n1,\n2,3\n", encoding="utf-8")
    with pytest.raises(DataError, match="set data.missing to drop, ffill or interpolate"):
        read(path, time_column="t")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "the file is empty"),
        (b"date,sales\n", "no data rows"),
        (b"\x00\x01\x02\xff\xfe", "cannot be read as text"),
    ],
)
def test_unreadable_files(tmp_path: Path, content, expected):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected):
        read(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(DataError, match="data file not found"):
        read(tmp_path / "nope.csv")


def test_future_dates_continue_trading_days():
    index = pd.bdate_range("2017-10-02", "2017-11-10").delete(5)  # one holiday gap
    assert list(future_index(index, 3).strftime("%Y-%m-%d")) == [
        "2017-11-13",
        "2017-11-14",
        "2017-11-15",
    ]


def test_future_dates_continue_months_and_quarters():
    months = pd.date_range("2000-01-01", periods=24, freq="MS")
    assert list(future_index(months, 2).strftime("%Y-%m-%d")) == ["2002-01-01", "2002-02-01"]
    quarters = pd.date_range("1959-01-01", periods=12, freq="QS")
    assert list(future_index(quarters, 2).strftime("%Y-%m-%d")) == ["1962-01-01", "1962-04-01"]


def test_integer_time_steps_continue_by_their_increment():
    assert list(future_index(pd.Index([2004, 2006, 2008], name="year"), 3)) == [2010, 2012, 2014]


@pytest.mark.parametrize(
    ("index", "season"),
    [
        (pd.date_range("2000-01-01", periods=40, freq="MS"), 12),
        (pd.date_range("2000-01-01", periods=40, freq="QS"), 4),
        (pd.date_range("2000-01-01", periods=40, freq="D"), 7),
        (pd.date_range("2000-01-01", periods=40, freq="W"), 52),
        (pd.date_range("2000-01-01", periods=60, freq="h"), 24),
        (pd.bdate_range("2000-01-03", periods=40), 5),
        (pd.RangeIndex(40), 1),
    ],
)
def test_season_length_from_frequency(index, season):
    assert season_length(index) == season


# --------------------------------------------------------------------------- number formats


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_quoted_thousands_in_a_comma_file_are_numbers(tmp_path: Path):
    path = write_text(tmp_path / "a.csv", 'date,sales\n2020-01-01,"1,234.5"\n2020-01-02,"2,000"\n')
    assert read(path, time_column="date").values[:, 0].tolist() == [1234.5, 2000.0]


def test_decimal_comma_in_a_semicolon_file_needs_data_decimal(tmp_path: Path):
    path = write_text(tmp_path / "eu.csv", "date;sales\n2020-01-01;1,5\n2020-01-02;2,25\n")
    with pytest.raises(DataError) as info:
        read(path, time_column="date")
    assert str(info.value) == (
        f"{path}: column 'sales' row 2: '1,5' is not a number with '.' as decimal mark; if ',' "
        "is the decimal mark in this file, set data.decimal: ','; fix the cell or choose "
        "numeric columns in data.features/targets"
    )
    assert read(path, time_column="date", decimal=",").values[:, 0].tolist() == [1.5, 2.25]


def test_a_grouped_cell_that_could_be_a_decimal_is_refused(tmp_path: Path):
    # in a ';' file, "1,500" is 1500 (thousands) or 1.5 (decimal comma): never guess
    path = write_text(tmp_path / "eu.csv", "date;sales\n2020-01-01;1,500\n2020-01-02;2,250\n")
    with pytest.raises(DataError, match=r"row 2: '1,500' is ambiguous: ',' may group thousands"):
        read(path, time_column="date")
    assert read(path, time_column="date", thousands=",").values[:, 0].tolist() == [1500, 2250]
    assert read(path, time_column="date", decimal=",").values[:, 0].tolist() == [1.5, 2.25]


def test_european_grouping_with_decimal_comma(tmp_path: Path):
    text = "date;sales\n2020-01-01;1.234,5\n2020-01-02;7,25\n2020-01-03;12.000,75\n"
    path = write_text(tmp_path / "eu.csv", text)
    values = read(path, time_column="date", decimal=",").values[:, 0]
    assert values.tolist() == [1234.5, 7.25, 12000.75]
    # "1.234" alone could be 1234 or 1.234 when ',' is the decimal mark
    ambiguous = write_text(tmp_path / "eu2.csv", "date;sales\n2020-01-01;1.234\n2020-01-02;7,5\n")
    with pytest.raises(DataError, match=r"'1.234' is ambiguous"):
        read(ambiguous, time_column="date", decimal=",")
    assert read(ambiguous, time_column="date", decimal=",", thousands="none").values[
        :, 0
    ].tolist() == [1.234, 7.5]


def test_decimal_comma_cannot_be_the_delimiter(tmp_path: Path):
    path = write_text(tmp_path / "a.csv", "date,sales\n2020-01-01,1\n2020-01-02,2\n")
    with pytest.raises(DataError, match="data.decimal ',' is also this file's delimiter"):
        read(path, time_column="date", decimal=",")


@pytest.mark.parametrize(
    "text",
    [
        "date,sales\n2020-01-01,1\n2020-01-02,2\n",  # the quick path: ',' on every line
        "date;sales\n2020-01-01;1,5\n2020-01-02;7\n",  # ',' only in some: ';'
        "date\tsales\n2020-01-01\t1\n2020-01-02\t2\n",
        "date|a,b\n2020-01-01|1\n2020-01-02|2\n",  # ',' in the header alone: '|'
        "date;a,b\n2020-01-01;1,5\n2020-01-02;2,5\n",  # ',' and ';' both steady: Sniffer
        'date,name\n2020-01-01,"a;b"\n2020-01-02,c\n',  # quotes: Sniffer
        "sales\n1\n2\n",  # one column: Sniffer, which cannot tell (',')
    ],
)
def test_delimiter_as_csv_sniffer_finds_it(text: str):
    """The quick path for unambiguous files (serve parses one per request) gives what
    csv.Sniffer gives, and a file cut mid-line is judged on its whole lines."""
    import csv

    from forecast.data.csvfile import DELIMITERS, delimiter_of

    try:
        expected = csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        expected = ","
    assert delimiter_of(text, truncated=False) == expected
    assert delimiter_of(text + text.splitlines()[1][:4], truncated=True) == expected


def test_a_semicolon_file_with_lone_carriage_returns_is_read(tmp_path: Path):
    """Old Mac line ends (\\r alone): csv.Sniffer sees one long line and picked ',' (then
    refused as the decimal mark); the steady ';' on every line is found."""
    path = tmp_path / "mac.csv"
    path.write_bytes(b"date;sales\r2020-01-01;1,5\r2020-01-02;2\r2020-01-03;4,25\r")
    values = read(path, time_column="date", decimal=",").values[:, 0]
    assert values.tolist() == [1.5, 2.0, 4.25]


def test_decimal_and_thousands_must_differ():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="decimal and thousands are both ','"):
        DataConfig(path="x.csv", features=["a"], decimal=",", thousands=",")


# --------------------------------------------------------------------------- holes


def test_interpolation_never_reads_a_later_part():
    values = np.array([[1.0], [2.0], [np.nan], [np.nan], [10.0], [np.nan], [14.0]])
    # parts: rows 0-3 | 4-6. The holes at rows 2-3 end the first part: carried forward, not
    # drawn towards row 4's 10; the hole at row 5 lies between known rows of its part.
    filled = fill_missing(values, [4, 7])
    assert filled[:, 0].tolist() == [1, 2, 2, 2, 10, 12, 14]
    # one part: plain linear interpolation
    assert fill_missing(values, [7])[:, 0] == pytest.approx([1, 2, 14 / 3, 22 / 3, 10, 12, 14])
    # a hole before a column's first value takes it
    assert fill_missing(np.array([[np.nan], [3.0]]), [2])[:, 0].tolist() == [3, 3]


def test_time_labels_are_iso_dates_or_python_integers():
    import json

    from forecast.data.timesteps import time_labels

    steps = time_labels(pd.Index([2008, 2009, 2010]))
    assert json.dumps(list(steps)) == "[2008, 2009, 2010]"  # Python ints: JSON-ready
    days = time_labels(pd.DatetimeIndex(["2020-01-01", "2020-01-02"]))
    assert list(days) == ["2020-01-01", "2020-01-02"]
    hours = time_labels(pd.DatetimeIndex(["2020-01-01 00:00", "2020-01-01 01:30"]))
    assert list(hours) == ["2020-01-01T00:00:00", "2020-01-01T01:30:00"]
