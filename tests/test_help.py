"""`forecast --help` and every command's help: options shown with words a person reads (a
flag takes no value; CONFIG, PATH, N, TEXT), a plain usage line, docstring paragraphs
re-wrapped to the terminal's width, and no TensorFlow import."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from forecast.cli.app import app

runner = CliRunner()
COMMANDS = sorted(command.name or command.callback.__name__ for command in app.registered_commands)
HELPS = [[], *([command] for command in COMMANDS)]  # [] is `forecast --help`


def show_help(args: list[str], width: int = 80) -> str:
    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("args", HELPS, ids=lambda args: " ".join(args) or "forecast")
def test_help_shows_no_type_labels(args: list[str]):
    """Typer 0.29 labels each option with its Python type: `--quiet <bool>`, `--set
    <list[str]>`, `--port <int range>`, `config <path>`."""
    text = show_help(args)
    assert re.findall(r"<[a-z][a-z \[\]]*>", text) == [], text
    assert "<bool>" not in text and "<list[" not in text and "<int range>" not in text


@pytest.mark.parametrize("args", HELPS, ids=lambda args: " ".join(args) or "forecast")
def test_usage_line_has_no_braces(args: list[str]):
    usage = next(line for line in show_help(args).splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("train", "Usage: forecast train [OPTIONS] CONFIG"),
        ("backtest", "Usage: forecast backtest [OPTIONS] CONFIG..."),
        ("validate", "Usage: forecast validate [OPTIONS] CONFIG"),
        ("runs", "Usage: forecast runs [OPTIONS]"),
    ],
)
def test_usage_names_the_argument_in_capitals(command: str, usage: str):
    assert usage in show_help([command])


def test_flags_take_no_value_and_values_have_a_metavar():
    train = show_help(["train"], width=100)
    assert re.search(r"--quiet\s+-q\s+No progress on stderr", train), train
    assert re.search(r"--resume\s+Continue the newest", train), train
    assert re.search(r"--help\s+Show this message", train), train
    assert re.search(r"--runs-dir\s+PATH\s+Folder that holds the runs", train), train
    assert re.search(r"--seed\s+N\s+Override the config's seed", train), train
    assert re.search(r"--set\s+KEY=VALUE\s+Override a config value", train), train
    assert re.search(r"CONFIG\s+PATH\s+The YAML config file", train), train
    root = show_help([], width=100)
    assert re.search(r"--debug\s+Show tracebacks", root), root
    assert re.search(r"--version\s+Print the version", root), root
    predict = show_help(["predict"], width=100)
    assert re.search(r"--encoding\s+TEXT\s+Of the forecast CSV", predict), predict
    assert re.search(r"--id\s+TEXT\s+Long tables", predict), predict
    serve = show_help(["serve"], width=100)
    assert re.search(r"--port\s+N\s+TCP port, 0 to 65535", serve), serve
    assert "<=x<=" not in serve


def description(text: str) -> list[str]:
    """The lines between the usage line and the first panel: the command's docstring."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Usage:" in line) + 1
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return [line.strip() for line in lines[start:end]]


@pytest.mark.parametrize("width", [80, 100])
@pytest.mark.parametrize("args", HELPS, ids=lambda args: " ".join(args) or "forecast")
def test_paragraphs_are_wrapped_to_the_width_not_where_the_docstring_broke(args, width):
    """A line followed by more of its paragraph is full: the next word would not have fit
    (the text is padded by one column on each side). A docstring wrapped by hand at 92
    columns shows as a line of ~80 and a stub of a few words when rich keeps its breaks."""
    lines = description(show_help(args, width))
    assert any(lines), lines
    for line, following in zip(lines, lines[1:], strict=False):
        if line and following:
            room = width - 2
            assert len(line) + 1 + len(following.split()[0]) > room - 1, (line, following)


def test_help_keeps_the_text_of_the_docstrings():
    """Markdown must not swallow parts of the help (an `<id>` reads as an HTML tag)."""
    predict = " ".join(description(show_help(["predict"], width=200)))
    assert "TARGET_lo_80, TARGET_hi_80" in predict, predict
    assert "Example: forecast predict --csv data/msft_daily.csv --horizon 10" in predict
    backtest = " ".join(description(show_help(["backtest"], width=200)))
    assert "Origins are --step rows apart" in backtest, backtest


def test_every_help_is_fast_and_imports_no_tensorflow():
    code = (
        "import sys, time\n"
        "from forecast.cli.app import app\n"
        f"for args in [[]] + [[c] for c in {COMMANDS!r}]:\n"
        "    start = time.perf_counter()\n"
        "    try:\n        app([*args, '--help'])\n    except SystemExit:\n        pass\n"
        "    assert time.perf_counter() - start < 2, (args, time.perf_counter() - start)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
