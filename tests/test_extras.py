"""The optional extras: a command whose extra is not installed says, in one line and exit 2,
which extra to install (no traceback); pyproject.toml's extras hold what that code imports.

The CLI runs in a subprocess whose `sys.modules` blocks the extra's package (None there makes
its import fail as a missing package does), so nothing is uninstalled for the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def forecast_without(package: str, *args: str) -> subprocess.CompletedProcess:
    """`forecast ARGS` in a process where `package` cannot be imported."""
    code = (
        f"import sys; sys.modules[{package!r}] = None\nfrom forecast.cli.app import main\nmain()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("package", ["fastapi", "uvicorn"])
def test_serve_without_the_serve_extra_is_one_line(package: str, tmp_path: Path) -> None:
    # said before any run is looked for: no run exists here
    done = forecast_without(package, "serve", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: forecast serve needs the serve extra: pip install 'forecast[serve]'"
    ]
    assert done.stdout == ""


def test_serve_with_the_extra_goes_on_to_the_run(tmp_path: Path) -> None:
    """The same command with the extra installed gets past it, to the missing run."""
    done = forecast_without("no_such_package", "serve", "--runs-dir", str(tmp_path / "runs"))
    assert done.returncode == 2
    assert "serve extra" not in done.stderr and len(done.stderr.splitlines()) == 1


def test_ray_without_the_ray_extra_is_one_line(tmp_path: Path) -> None:
    # said up front, before the config's data is read or anything is fitted
    config = tmp_path / "c.yaml"
    config.write_text("data: {path: nowhere.csv, features: [a]}\n", encoding="utf-8")
    done = forecast_without("ray", "backtest", str(config), "--ray", "auto")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "error: --ray needs the ray extra: pip install 'forecast[ray]' (or leave out --ray)"
    ]


def test_onnx_export_without_the_onnx_extra_is_one_line(monkeypatch) -> None:
    from forecast.errors import ConfigError
    from forecast.workflows.export import _require_onnx

    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    with pytest.raises(ConfigError) as caught:
        _require_onnx()
    assert str(caught.value) == (
        "--format onnx needs the onnx extra: pip install 'forecast[onnx]' (or use "
        "--format saved_model or tflite)"
    )


def test_the_extras_hold_what_their_code_imports() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]

    def names(requirements: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in requirements}

    assert names(extras["serve"]) == {"fastapi", "uvicorn"}
    assert "tf2onnx" in names(extras["onnx"]) and names(extras["tensorboard"]) == {"tensorboard"}
    # not for every user: only `forecast serve`, the benchmarks
    assert not names(project["dependencies"]) & {"fastapi", "uvicorn", "statsforecast", "torch"}
    assert "statsforecast" in names(extras["bench"]) and "statsforecast" not in names(extras["dev"])
    assert not [r for rs in extras.values() for r in rs if "==" in r]  # no machine's own pin
    # `make test` installs dev: the tests of serve, export and TensorBoard need those extras
    assert "forecast[serve,onnx,tensorboard,ray]" in extras["dev"]
    assert names(extras["ray"]) == {"ray"} and "ray" not in names(project["dependencies"])
