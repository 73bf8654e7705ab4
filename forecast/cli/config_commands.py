"""The commands that take a config or write one: train, backtest, tune, validate, init, schema.

Each parses its options, makes one forecast.api call and prints. forecast.api (pandas, numpy)
is imported inside each command, so that --help answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from forecast.cli.errors import NO_RUN_WRITTEN, call_api
from forecast.cli.options import (
    QuietOpt,
    RayOpt,
    RunsDirOpt,
    SeedOpt,
    SetOpt,
    WorkersOpt,
    setup_logging,
)
from forecast.cli.tables import format_backtest, format_metrics, format_trials
from forecast.errors import ForecastError


def train(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    runs_dir: RunsDirOpt = Path("runs"),
    set_: SetOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Continue the newest interrupted run of this config."),
    ] = False,
    workers: WorkersOpt = None,
    ray: RayOpt = None,
) -> None:
    """Train a model, evaluate it against baselines on the test split, save a run.

    Prints a metrics table and, as its last line, the run directory. Ctrl-C or SIGTERM keep
    the finished epochs (or the trained model) in a hidden partial run; --resume continues
    from there. --workers or --ray fit the members of an independent ensemble
    (model.ensemble_fit: independent) in parallel, with the same results.

    Example: forecast train configs/univariate.yaml --set training.epochs=5
    """
    setup_logging(quiet)
    from forecast import api

    # (Typer bundles its own click: the source is compared by name)
    from_env = getattr(ctx.get_parameter_source("ray"), "name", "") == "ENVIRONMENT"

    def run() -> Any:
        given = ray
        if from_env:  # RAY_ADDRESS of a Ray machine: used where there are members to fan out
            from forecast.fitting.members import independent

            cfg = api.load(config, set_, seed)
            fans_out = independent(cfg) and cfg.training.distribute == "none"
            given = ray if fans_out else None
        return api.train(
            config, runs_dir, set_, seed, quiet, resume=resume, workers=workers, ray=given
        )

    result = call_api(run, left=NO_RUN_WRITTEN)
    if result.run_dir is None:  # a multi-worker run's other worker: the chief prints
        typer.echo(f"worker {result.worker}: done; worker 0 wrote the run", err=True)
        return
    typer.echo(format_metrics(result.metrics, result.config.model.describe()))
    typer.echo(result.verdict)
    typer.echo(str(result.run_dir))


def backtest(
    configs: Annotated[
        list[Path],
        typer.Argument(
            help="The YAML config file; several: their folds are one list of fits.",
            metavar="CONFIG",
        ),
    ],
    folds: Annotated[int, typer.Option("--folds", "-k", help="Number of forecast origins.")] = 3,
    step: Annotated[
        int | None,
        typer.Option("--step", help="Rows between fold origins; default: the horizon."),
    ] = None,
    workers: WorkersOpt = None,
    ray: RayOpt = None,
    runs_dir: RunsDirOpt = Path("runs"),
    set_: SetOpt = None,
    seed: SeedOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Rolling-origin evaluation: refit on the rows up to each origin, forecast the horizon.

    Origins are `--step` rows apart (default: the horizon), the last fold ending at the
    last row. Prints a table per fold (with the dates it forecasts) and the mean; the last
    line is the path of backtest.json. Several configs (one per series, say) are all
    checked first; then the folds of all of them run as one list, in turn in this process
    (TensorFlow imported once, models of the same shape reused), in --workers processes
    (auto: as many as the cores and the work repay, recorded in backtest.json) or on
    --ray; each gets its own run directory and its own block of output ending in its
    backtest.json path.

    Example: forecast backtest configs/univariate_multi_step.yaml --folds 3 --step 20
    """
    setup_logging(quiet)
    from forecast import api

    def check(path: Path) -> Any:
        try:
            return api.check_backtest(path, folds, set_, seed, step, api.Fanout(workers, ray))
        except ForecastError as exc:  # which of several configs it is, if it does not say
            if len(configs) > 1 and str(path) not in str(exc):
                raise type(exc)(f"{path}: {exc}") from None
            raise

    plans = call_api(lambda: [check(c) for c in configs], left=NO_RUN_WRITTEN)
    headed: set[int] = set()
    saved: list[int] = []

    def heading(number: int) -> None:
        if len(configs) > 1 and number not in headed:
            typer.echo(f"{chr(10) if headed else ''}== {configs[number]} ==")
            headed.add(number)

    def show(number: int, result: Any) -> None:
        heading(number)
        typer.echo(format_backtest(result.report))
        typer.echo(result.report["verdict"])
        typer.echo(str(result.path))
        saved.append(number)

    def left() -> str:
        if not saved:
            return NO_RUN_WRITTEN
        return f"the backtests up to {configs[saved[-1]]} are saved, none after it"

    call_api(lambda: api.run_backtest_plans(plans, runs_dir, quiet, heading, show), left=left)


def tune(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    trials: Annotated[int, typer.Option("--trials", "-n", help="Settings to try.")] = 8,
    folds: Annotated[int, typer.Option("--folds", "-k", help="Backtest folds per trial.")] = 3,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Where to write the best config (a new file)."),
    ] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    workers: WorkersOpt = None,
    ray: RayOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Search the residual base, window, layer width, learning rate, schedule and loss.

    Each trial is a rolling-origin backtest on the config's training part only (the test
    rows are never used); trial 1 is the config as given. Writes the best as a complete
    config (default: CONFIG's folder, NAME.tuned.yaml), every trial's score in its header;
    the last line printed is its path. Then: forecast train NAME.tuned.yaml

    Example: forecast tune configs/univariate_multi_step.yaml --trials 4 --folds 1
    """
    setup_logging(quiet)
    from forecast import api

    result = call_api(
        lambda: api.tune(
            config, trials, folds, output, set_, seed, quiet, workers=workers, ray=ray
        ),
        left="no config was written",
    )
    typer.echo(format_trials(result, folds))
    typer.echo(str(result.path))


def validate(
    config: Annotated[Path, typer.Argument(help="The YAML config file.")],
    set_: SetOpt = None,
) -> None:
    """Check a config and its data without training: layout, shapes, splits, parameters.

    Example: forecast validate configs/multi_output.yaml --set window.input_steps=24
    """
    setup_logging(False)
    from forecast import api

    info = call_api(lambda: api.validate(config, set_))
    split = info["split"]
    shape = "x".join
    typer.echo(f"layout:          {info['layout']}")
    if "series" in info:
        left = info["skipped_series"]
        out = f" ({len(left)} too short, left out: {api.short_id_list(left)})" if left else ""
        typer.echo(f"series:          {info['series']}{out}")
    typer.echo(
        f"rows:            {info['rows']} (train {split['train']}, validation "
        f"{split['validation']}, test {split['test']})"
    )
    typer.echo(
        f"train windows:   {shape(map(str, info['train_windows']))} (samples x steps x features)"
    )
    typer.echo(f"val windows:     {shape(map(str, info['val_windows']))}")
    typer.echo(f"test origins:    {shape(map(str, info['test_origins']))}")
    typer.echo(f"output:          {shape(map(str, info['output']))} (horizon x targets)")
    typer.echo(f"model:           {info['model']} ({info['parameters']:,} parameters)")
    typer.echo(f"season length:   {info['season_length']}")


def init(
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="univariate, multivariate, multi_output, univariate_multi_step, "
            "multivariate_multi_step or multi_output_multi_step; a --horizon over 1 makes "
            "it multi-step.",
        ),
    ] = "univariate",
    csv: Annotated[
        Path | None, typer.Option("--csv", help="Fill columns, time and season from this CSV.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            help="The column to forecast; default: chosen from the CSV (a closing price, or a "
            "column named like sales, value, demand or load, else the most variable one; "
            "never a 0/1 dummy or counter), and named on stderr.",
        ),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon",
            help="Steps ahead; default: 1, and for a *_multi_step layout one season "
            "(2 to 12 steps).",
        ),
    ] = None,
    decimal: Annotated[
        str,
        typer.Option("--decimal", help="The CSV's decimal mark: . or , (written as data.decimal)."),
    ] = ".",
    encoding: Annotated[
        str,
        typer.Option(
            "--encoding",
            help="The CSV's encoding: auto (utf-8, utf-8 with BOM, gb18030) or a codec such as "
            "gbk or latin-1 (written as data.encoding).",
        ),
    ] = "auto",
) -> None:
    """Print a commented starter config (save it with `> my.yaml`); with --csv, the target
    chosen is named on stderr.

    Example: forecast init --csv data/airline_monthly.csv --target passengers --horizon 12
    """
    setup_logging(False)
    from forecast import api

    text = call_api(lambda: api.starter_config(layout, csv, target, horizon, decimal, encoding))
    typer.echo(text, nl=False)


def schema() -> None:
    """Print the config's JSON Schema (for editors).

    Example: forecast schema > forecast.schema.json
    """
    from forecast.config.file import json_schema  # the config alone: no pandas, no data

    typer.echo(json.dumps(json_schema(), indent=2))
