"""What each training speed-up costs and saves, as a user meets it: `forecast train` (a new
process, final fit off) of several model shapes with each explicit setting of
`training.jit_compile` and `training.unroll`, and with `auto`.

    python benchmarks/speedups.py              # every case (about 20 minutes on 2 cores)
    python benchmarks/speedups.py --cases issue

For each case and setting, two runs: 1 epoch and `--epochs` epochs. From run.json's
`timings` (`build` + `window` + `fit`: the model built, compiled, traced and fitted), the
fixed cost (compile included) and the cost per epoch follow; the table gives both and the
whole fit of the case's own epochs, for each setting, and which one `auto` chose.
Results go to benchmarks/results/speedups.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# each command measured here is a process of its own, TensorFlow imported in it (the warm
# start, forecast/cli/warm.py, is off; benchmarks/run.py's group backtest_cli measures it)
os.environ["FORECAST_WARM"] = "0"
ROOT = Path(__file__).resolve().parents[1]
FORECAST = str(Path(sys.executable).parent / "forecast")
SETTINGS = {  # name -> (jit_compile, unroll)
    "looped": (False, False),
    "unrolled": (False, True),
    "xla": (True, False),
    "auto": ("auto", "auto"),
}


def msft(layers: list[dict], batch: int, **training) -> dict:
    raw = yaml.safe_load((ROOT / "configs" / "univariate.yaml").read_text())
    raw["data"]["path"] = str(ROOT / "data" / "msft_daily.csv")
    raw["model"] = {"layers": layers}
    raw["training"] = {"batch_size": batch, "early_stopping": False, "final_fit": False}
    raw["training"].update(training)
    return raw


def small(csv: str, target: str, horizon: int) -> dict:
    from forecast.workflows.starter import starter_config

    text = starter_config("univariate", ROOT / csv, target, horizon)
    raw = yaml.safe_load(text)
    raw["training"].update({"early_stopping": False, "final_fit": False})
    return raw


LSTM50 = [{"lstm": {"units": 50, "return_sequences": True}}, {"lstm": {"units": 50}}]
CASES = {
    # the fit: 2 x LSTM(50), window 60, batch 32, 3 epochs (msft: 7,923 windows)
    "issue": (lambda: msft(LSTM50, 32), 3),
    "batch256": (lambda: msft(LSTM50, 256), 10),
    "gru16": (lambda: msft([{"gru": {"units": 16}}], 32), 3),
    # the config `forecast init` writes for a small monthly series: 100 epochs budget, early
    # stopping usually ends it within 30 (here off, 30 epochs)
    "airline": (lambda: small("data/airline_monthly.csv", "passengers", 12), 30),
    "a10": (lambda: small("data/accuracy/a10_monthly.csv", "sales", 12), 30),
}


def run(raw: dict, epochs: int, setting: tuple, folder: Path) -> float:
    jit, unroll = setting
    config = folder / "c.yaml"
    body = {**raw, "training": {**raw["training"], "epochs": epochs}}
    body["training"].update({"jit_compile": jit, "unroll": unroll})
    config.write_text(yaml.safe_dump(body))
    done = subprocess.run(
        [FORECAST, "train", str(config), "--runs-dir", str(folder / "runs"), "--quiet"],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    info = json.loads((Path(done.stdout.strip().splitlines()[-1]) / "run.json").read_text())
    t = info["timings"]
    run.chosen = (info.get("jit_compile"), info.get("unroll"))  # type: ignore[attr-defined]
    return t["build"] + t["window"] + t["fit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS))
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/speedups.json")
    args = parser.parse_args()
    results = {}
    for name in args.cases:
        make, epochs = CASES[name]
        raw = make()
        entry = {}
        with tempfile.TemporaryDirectory() as tmp:
            for setting, values in SETTINGS.items():
                if setting not in args.settings:
                    continue
                one = run(raw, 1, values, Path(tmp))
                many = run(raw, epochs, values, Path(tmp))
                per_epoch = (many - one) / (epochs - 1)
                entry[setting] = {
                    "one_epoch": round(one, 3),
                    "whole": round(many, 3),
                    "per_epoch": round(per_epoch, 3),
                    "fixed": round(one - per_epoch, 3),
                    "chosen": list(run.chosen),  # type: ignore[attr-defined]
                }
                print(name, setting, entry[setting], flush=True)
        explicit = [s for s in ("looped", "unrolled", "xla") if s in entry]
        if explicit and "auto" in entry:
            best = min(explicit, key=lambda s: entry[s]["whole"])
            entry["summary"] = {
                "epochs": epochs,
                "best": best,
                "auto_over_best": round(entry["auto"]["whole"] / entry[best]["whole"], 3),
            }
            print(name, entry["summary"], flush=True)
        results[name] = entry
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
