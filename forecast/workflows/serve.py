"""`forecast serve`: an HTTP server over one loaded run (FastAPI on uvicorn).

The run is loaded once, at start, in safe mode (a `Predictor`); every request is parsed
into the same `Series` that `forecast predict --csv` reads (a JSON history is written out as
CSV text and goes through the same reader), so the answers are `predict`'s numbers.

    GET  /health    {"status": "ok", "run": NAME}
    GET  /info      layout, columns, input_steps, history_rows, horizon, interval levels
    POST /forecast  JSON {"history": [{<time column>: ..., <col>: ...}, ...], "horizon": H}
                    or a CSV body (Content-Type: text/csv; horizon as ?horizon=H)
                    -> {"run": NAME, "forecast": [{<time column>: ..., <target>: ...,
                        <target>_lo_80: ..., ...}], "warnings": [...]}

A JSON body is validated by a pydantic model (`ForecastBody`), and ?horizon= is a FastAPI
query parameter of the same type. The endpoint reads the body itself: FastAPI's body parameter
reads it whole with no size or time limit, and as JSON only (a CSV body is the history alone).
A bad request gets a 4xx with {"error": one line naming the field or column}, an
internal error a 500 with one line (its traceback goes to stderr), and the server keeps
serving. A small request served as ONNX (one series, a body up to INLINE_BODY bytes, at
most INLINE_CALLS model calls: ~2 ms of work) is answered on the event loop itself, with
its own model call (it never waits for another request's batch): handed to a
worker thread, it cost more than that (every socket call of the loop then waited for the
GIL: on 2 cores, 50 clients' p99 was 151-187 ms against 132-138 ms). Any other forecast
runs in a worker thread, so the event loop keeps answering while it is computed; requests
that arrive together share batched model calls (forecast.forecasting.batching), each
answered with the numbers it would get alone.

A client that does not send its whole body within BODY_TIMEOUT seconds (the environment
variable FORECAST_SERVE_BODY_TIMEOUT, if set) gets a 408 and is dropped; one that connects
and does not finish its request's headers within that time is dropped without an answer; an idle
keep-alive connection is closed after KEEP_ALIVE seconds; on Ctrl-C or SIGTERM the server
takes no new request and gives running ones SHUTDOWN_GRACE seconds (then a 503), whatever its
clients do. No OpenAPI schema or docs pages are served: /info is the one description of what
to send. Running the app (the socket, uvicorn, stop requests, `--workers`' processes):
forecast.workflows.server.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import re
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from forecast.data.reading import read_panel, read_series
from forecast.errors import ConfigError, ForecastError
from forecast.workflows.export import input_rows

if TYPE_CHECKING:  # the API hands it one
    from forecast.workflows.predictor import Predictor

# the serve extra. FastAPI resolves the handlers' annotations from this module's globals:
# Request, Query, Annotated and Horizon must be names here
try:
    import uvicorn  # noqa: F401 - forecast.workflows.server runs the app on it
    from fastapi import FastAPI, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
except ModuleNotFoundError:  # fastapi, uvicorn or a module of theirs (h11, starlette)
    raise ConfigError(
        "forecast serve needs the serve extra: pip install 'forecast[serve]'"
    ) from None

MAX_BODY = 5_000_000  # bytes; a longer history than that is no one-origin forecast
MAX_HORIZON = 1000  # steps per request: a longer loop would hold the model from every other
DRAIN = 4  # an over-long body is read (and dropped) up to DRAIN x MAX_BODY before answering
# seconds for a whole body to arrive (5 MB at 170 kB/s): a stalled client holds no worker
BODY_TIMEOUT = 30.0
KEEP_ALIVE = 5  # seconds an idle connection stays open between requests
SHUTDOWN_GRACE = 3  # seconds requests get to finish after Ctrl-C or SIGTERM; then cancelled
INLINE_BODY = 65_536  # bytes (~3,000 CSV rows): a request up to this size, and
INLINE_CALLS = 8  # up to this many model calls, served as ONNX, is answered on the loop
log = logging.getLogger("forecast.serve")


def _number_text(value: Any) -> Any:
    """'5', ' +5 ' (a number as text, as ?horizon= always is) -> 5; anything else as is."""
    if isinstance(value, str) and value.strip().lstrip("+").isdecimal():
        return int(value)
    return value


# a whole number, or one written as text; strict: not 5.0, "5.0" or true as pydantic's lax
# int would take them
Horizon = Annotated[int, BeforeValidator(_number_text), Field(strict=True, ge=1, le=MAX_HORIZON)]


class ForecastBody(BaseModel):
    """The JSON body of POST /forecast (a CSV body is the history alone)."""

    model_config = ConfigDict(extra="forbid")

    history: list[dict[str, Any]] = Field(
        min_length=1, description="a non-empty list of rows ({column: value})"
    )
    horizon: Horizon | None = Field(None, description=f"an integer from 1 to {MAX_HORIZON}")


def invalid(errors: list[Any]) -> str:
    """pydantic's errors of a JSON body or of ?horizon= -> one line naming the field."""
    fields = ForecastBody.model_fields
    unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return f"body: unknown field '{unknown[0]}'; the fields are {', '.join(fields)}"
    error = errors[0]
    loc = [part for part in error["loc"] if part != "query"]  # ?horizon= is the field too
    if not loc:
        return 'body: must be a JSON object {"history": [...], "horizon": H}'
    if loc[0] not in fields:  # pragma: no cover - no other field is declared
        return f"request: {error['msg']}"
    if len(loc) > 1:  # a row of the history
        return f"{loc[0]}[{loc[1]}]: must be an object {{column: value}}"
    got = f", got {_number_text(error['input'])!r}" if loc[0] == "horizon" else ""
    return f"{loc[0]}: must be {fields[loc[0]].description}{got}"


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def body_timeout() -> float:
    """BODY_TIMEOUT, or FORECAST_SERVE_BODY_TIMEOUT's seconds if set."""
    text = os.environ.get("FORECAST_SERVE_BODY_TIMEOUT", "").strip()
    if not text:
        return BODY_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise ConfigError(
            f"FORECAST_SERVE_BODY_TIMEOUT={text}: must be a number of seconds above 0, such as "
            f"{BODY_TIMEOUT:g}; or unset it"
        )
    return seconds


def history_csv(history: list[dict[str, Any]], decimal: str = ".") -> bytes:
    """A JSON body's history -> CSV bytes in the run's number format: with a decimal comma,
    `;` between fields (a comma-separated file would clash with it)."""
    sep = ";" if decimal == "," else ","
    return pd.DataFrame(history).to_csv(index=False, sep=sep, decimal=decimal).encode("utf-8")


def parse_body(raw: bytes) -> ForecastBody:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(400, f"body: not valid JSON ({exc})") from None
    try:
        return ForecastBody.model_validate(payload)
    except ValidationError as exc:
        raise BadRequest(400, invalid(exc.errors())) from None


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN (a bound past the calibrated steps) becomes null."""
    names = [str(name) for name in frame.columns]
    # as Python objects (floats, ints, str, Timestamp), as to_dict(orient="records") gives
    # them, in a fraction of its time
    rows = frame.to_numpy(dtype=object).tolist()
    return [
        {
            k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in zip(names, r, strict=True)
        }
        for r in rows
    ]


def answered_on_loop(predictor: Predictor, size: int, horizon: int | None) -> bool:
    """A request answered on the event loop (see INLINE_BODY): one series (a long table's
    body may hold hundreds), served as ONNX, a body of at most INLINE_BODY bytes and at most
    INLINE_CALLS model calls; a few milliseconds of work."""
    if predictor.config.data.id_column is not None or not predictor.portable:
        return False
    steps = horizon or predictor.config.window.horizon
    return size <= INLINE_BODY and math.ceil(steps / predictor.network_shape[2]) <= INLINE_CALLS


def run_info(predictor: Predictor) -> dict[str, Any]:
    cfg = predictor.config
    data = cfg.data
    levels = list(cfg.intervals) if predictor.calibration_known else []
    return {
        "run": predictor.run.name,
        "layout": cfg.layout,  # filled in by validation
        "time_column": data.time_column,
        "features": list(data.features),
        "targets": list(data.targets),
        # every column a request must send, the time column too (the reader demands it)
        "columns": ([data.id_column] if data.id_column else [])
        + ([data.time_column] if data.time_column else [])
        + list(data.read_columns if predictor.needs_targets else data.features),
        "input_steps": cfg.window.input_steps,
        "history_rows": input_rows(cfg),
        "horizon": cfg.window.horizon,
        "multi_step": cfg.window.multi_step,
        "intervals": levels,
        "id_column": data.id_column,  # a long table: every row names its series
        "transform": data.transform,
    }


def create_app(
    predictor: Predictor, max_body: int = MAX_BODY, body_seconds: float = BODY_TIMEOUT
) -> Any:
    """The FastAPI application answering for `predictor` (a `Predictor`); a request
    body must arrive within `body_seconds`."""
    name = predictor.run.name
    info = run_info(predictor)
    if predictor.shared is None:
        predictor.share_model_calls()  # concurrent requests: batched model calls
    small = functools.partial(answered_on_loop, predictor)

    # no docs pages, and so no schema either: /info says what to send
    app = FastAPI(title="forecast", version="1", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, message: str) -> JSONResponse:
        message = " ".join(message.splitlines())  # one line, whatever was raised
        # after a 408 the rest of the body may still come: the connection is not reused
        close = {"Connection": "close"} if status == 408 else None
        return JSONResponse({"error": message}, status_code=status, headers=close)

    # the router's own answers, by status: no need for starlette's HTTPException class
    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error(404, f"{request.url.path}: no such endpoint; try /health, /info, /forecast")

    @app.exception_handler(405)
    async def not_allowed(request: Request, exc: Exception) -> JSONResponse:
        return error(405, f"{request.method} {request.url.path}: method not allowed")

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, invalid(list(exc.errors())))

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "run": name}

    @app.get("/info")
    async def get_info() -> dict[str, Any]:
        return info

    async def body_of(request: Request) -> bytes:
        try:
            return await asyncio.wait_for(read_body(request), body_seconds)
        except asyncio.TimeoutError:  # TimeoutError from Python 3.11
            raise BadRequest(
                408, f"body: not received in full within {body_seconds:g} s; send it again"
            ) from None

    async def read_body(request: Request) -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= max_body:
                chunks.append(chunk)
            elif size > DRAIN * max_body:  # stop reading an endless body
                break
        if size > max_body:  # read to its end (up to a point): the client gets this answer
            raise BadRequest(413, f"body: over the limit of {max_body:,} bytes; send fewer rows")
        return b"".join(chunks)

    def answer(
        raw: bytes, horizon: int | None, from_json: bool, shared: bool = True
    ) -> dict[str, Any]:
        try:
            read = read_panel if predictor.config.data.id_column else read_series
            series = read(
                predictor.config.data,
                path="request body",
                require_targets=predictor.needs_targets,
                raw=raw,
            )
        except ForecastError as exc:
            if not from_json:
                raise
            # the reader counts CSV lines (the header is line 1): name the JSON row instead
            message = re.sub(
                r"column '(.*?)' row (\d+):",
                lambda m: f"history[{int(m.group(2)) - 2}].{m.group(1)}:",
                str(exc),
            )
            raise BadRequest(400, message) from None
        frame, warnings = predictor.forecast(series, horizon, "horizon={}", shared=shared)
        return {"run": name, "forecast": records(frame), "warnings": warnings}

    @app.post("/forecast")
    async def post_forecast(
        request: Request, horizon: Annotated[Horizon | None, Query()] = None
    ) -> Any:
        try:
            body = await body_of(request)
            kind = request.headers.get("content-type", "application/json").split(";")[0]
            kind = kind.strip().lower()
            from_json = kind not in ("text/csv", "application/csv")
            if not from_json:
                raw = body
            elif kind in ("application/json", ""):
                parsed = parse_body(body)
                raw = history_csv(parsed.history, predictor.config.data.decimal)
                if None not in (horizon, parsed.horizon) and horizon != parsed.horizon:
                    raise BadRequest(
                        400,
                        f"horizon: ?horizon={horizon} and the body's {parsed.horizon}; give one",
                    )
                horizon = horizon if parsed.horizon is None else parsed.horizon
            else:
                raise BadRequest(415, f"Content-Type {kind}: send application/json or text/csv")
            if small(len(raw), horizon):  # its own model call: never waits for a batch
                return answer(raw, horizon, from_json, shared=False)
            return await run_in_threadpool(answer, raw, horizon, from_json)
        except BadRequest as exc:
            return error(exc.status, str(exc))
        except ForecastError as exc:  # the reader's and the model's one-line messages
            return error(400, str(exc))
        except Exception as exc:  # a bug: the traceback to the log, one JSON line to the client
            log.error("POST /forecast: internal error (answered 500)", exc_info=exc)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return error(500, f"internal error: {type(exc).__name__}: {first[:200]}")
        except asyncio.CancelledError:  # still running SHUTDOWN_GRACE s after a stop request
            return error(503, "server: stopping; send the request again to its next start")

    return app
