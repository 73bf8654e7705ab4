"""The installed console script as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": ""}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_help_and_config_errors_do_not_import_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from forecast.cli.app import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "for args in (['validate', '--help'], ['schema'], ['train', '--help'], ['runs'],\n"
        "             ['init'], ['train', 'missing.yaml'], ['validate', 'missing.yaml']):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
        "assert 'keras' not in sys.modules, 'Keras was imported'\n"
    )
    result = run(sys.executable, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # three processes that each import TensorFlow, one of them training
def test_console_script_train_predict_plot(tiny_config):
    folder = tiny_config.parent
    train = run(BIN / "forecast", "train", tiny_config.name, "--quiet", cwd=folder)
    assert train.returncode == 0, train.stderr
    run_dir = folder / train.stdout.strip().splitlines()[-1]
    assert (run_dir / "model.keras").is_file()
    assert "Traceback" not in train.stderr and "cuda" not in train.stderr.lower()
    predict = run(BIN / "forecast", "predict", "--csv", "sales.csv", "--horizon", "2", cwd=folder)
    assert predict.returncode == 0, predict.stderr
    assert len(pd.read_csv(run_dir / "forecast.csv")) == 2
    plot = run(sys.executable, "-m", "forecast", "plot", cwd=folder)
    assert plot.returncode == 0, plot.stderr
    assert (run_dir / "forecast.png").is_file()


def test_user_error_exit_code_and_one_line(tmp_path):
    result = run(BIN / "forecast", "train", "missing.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: missing.yaml: config file not found; check the path"


@pytest.mark.slow
def test_make_demo_redirected_to_a_file_keeps_every_line(tmp_path: Path):
    """`make demo > out.txt 2>&1` used to lose the start of the file (`tee /dev/stderr`
    reopened and truncated it): the metrics table, the forecast and the closing line all land."""
    out = tmp_path / "demo.txt"
    runs_dir = tmp_path / "runs"
    with out.open("w") as sink:
        done = subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "demo", f"BIN={BIN}",
             f"DEMO_RUNS={runs_dir}",
             "DEMO_SET=--set training.epochs=1 --quiet"],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    text = out.read_text()
    assert done.returncode == 0, text
    (run_dir,) = [p for p in runs_dir.iterdir() if p.is_dir()]
    assert "MASE" in text and "seasonal_naive" in text  # train's table, first in the file
    assert f"{run_dir}\n" in text  # train's last line
    assert "Close_lo_80" in text  # predict's table
    assert text.rstrip().endswith(f"Results are in {run_dir} (metrics.json, "
                                  "test_predictions.csv, forecast.csv, *.png)")  # fmt: skip
    assert not (runs_dir / ".demo-train.out").exists()
