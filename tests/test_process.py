"""The installed console script as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

BIN = Path(sys.executable).parent


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": ""}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300
    )


def test_help_and_config_errors_do_not_import_tensorflow(tmp_path):
    code = (
        "import sys\n"
        "from forecast.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "for args in (['validate', '--help'], ['schema'], ['train', '--help'], ['runs'],\n"
        "             ['init'], ['train', 'missing.yaml'], ['validate', 'missing.yaml']):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
        "assert 'keras' not in sys.modules, 'Keras was imported'\n"
    )
    result = run(sys.executable, "-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr


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
