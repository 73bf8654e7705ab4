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
serving. Each forecast runs in a worker thread, so the event loop keeps answering while
one is computed; requests that arrive together share batched model calls
(forecast.forecasting.batching), each answered with the numbers it would get alone.

A client that does not send its whole body within BODY_TIMEOUT seconds (the environment
variable FORECAST_SERVE_BODY_TIMEOUT, if set) gets a 408 and is dropped; one that connects
and does not finish its request's headers within that time is dropped without an answer; an idle
keep-alive connection is closed after KEEP_ALIVE seconds; on Ctrl-C or SIGTERM the server
takes no new request and gives running ones SHUTDOWN_GRACE seconds (then a 503), whatever its
clients do. No OpenAPI schema or docs pages are served: /info is the one description of what
to send.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import re
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import pandas as pd
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from forecast.data.reading import read_panel, read_series
from forecast.errors import ConfigError, ForecastError
from forecast.interrupts import raise_if_stop_requested, tensorflow_work
from forecast.workflows.export import input_rows

if TYPE_CHECKING:  # the API hands it one
    from forecast.workflows.predictor import Predictor

# the serve extra. FastAPI resolves the handlers' annotations from this module's globals:
# Request, Query, Annotated and Horizon must be names here
try:
    import uvicorn
    from fastapi import FastAPI, Query, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from uvicorn.protocols.http.h11_impl import H11Protocol
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
LISTEN_BACKLOG = 2048  # uvicorn's own
SHUTDOWN_GRACE = 3  # seconds requests get to finish after Ctrl-C or SIGTERM; then cancelled
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
    rows = frame.to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows
    ]


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

    def answer(raw: bytes, horizon: int | None, from_json: bool) -> dict[str, Any]:
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
        frame, warnings = predictor.forecast(series, horizon, asked_as="horizon={}")
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


def headers_deadline_protocol(seconds: float) -> type:
    """uvicorn's h11 protocol, but a connection whose request headers are not all in
    `seconds` after it opened (or after the previous response) is closed. uvicorn times out
    only idle keep-alive connections, so a client that connects and sends nothing (or half
    a header) would hold its socket forever; a stalled body is the app's to answer (408)."""

    class HeadersDeadline(H11Protocol):
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self.headers_due = self.loop.call_later(seconds, self.drop_without_headers)

        def drop_without_headers(self) -> None:
            idle = self.cycle is None or self.cycle.response_complete  # no request under way
            if idle and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:  # the next request's headers: a new deadline
            super().on_response_complete()
            self.headers_due.cancel()
            self.headers_due = self.loop.call_later(seconds, self.drop_without_headers)

        def connection_lost(self, exc: Exception | None) -> None:
            self.headers_due.cancel()
            super().connection_lost(exc)

    return HeadersDeadline


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) as uvicorn's Config.bind_socket binds it, for
    `Server.run(sockets=...)`: the one bind, so no other process can take the port between
    a check and the server's start. A bind error is one line (uvicorn would log it and exit
    1): the port taken, no permission for it, a host that is no address here."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        # connections wait in the queue from now, not refused until uvicorn has started
        sock.listen(LISTEN_BACKLOG)
    except OSError as exc:
        sock.close()
        why = exc.strerror or str(exc)
        raise ConfigError(f"--host {host} --port {port}: cannot listen ({why})") from None
    return sock


def serve(predictor: Predictor, host: str, port: int, workers: int = 1) -> None:
    """Run the server until Ctrl-C or SIGTERM, in `workers` processes (this one and
    workers-1 more, forecast.workflows.serveworkers) on one listening socket."""
    from forecast.workflows.serveworkers import Workers

    body_timeout()  # a bad FORECAST_SERVE_BODY_TIMEOUT: one line before anything starts
    with listening_socket(host, port) as sock:  # closed here too if uvicorn never starts
        with tensorflow_work():  # a stop request meanwhile is noted, and raised just below
            sha256 = predictor.model_sha256  # what the workers must load too
            freeze_loaded()
        others = None
        try:
            if workers > 1:
                others = Workers(predictor.run, workers - 1, sock, sha256)
            processes = f", {workers} processes" if workers > 1 else ""
            logging.getLogger("forecast").info(
                "serving %s on http://%s:%d%s (Ctrl-C stops)",
                predictor.run.name,
                host,
                sock.getsockname()[1],  # the port given, or the one the system chose for 0
                processes,
            )
            answer_on(predictor, sock, others)
        finally:
            if others is not None:
                others.stop(grace=SHUTDOWN_GRACE + 5)
    # uvicorn stops on Ctrl-C or SIGTERM and passes the signal on to our handlers, which
    # note it: exit 130 or 143 as every other command does
    raise_if_stop_requested()


def freeze_loaded() -> None:
    """The loaded model's Python objects out of the garbage collector's reach: its full
    collections no longer walk TensorFlow's and Keras' heap, which held requests for up to
    ~0.2 s. (A signal handler that raises during the collection is lost in a collector
    callback: the callers note stop requests meanwhile.)"""
    gc.collect()
    gc.freeze()


def answer_on(
    predictor: Predictor,
    sock: socket.socket,
    others: Any = None,
    stopped: Callable[[], bool] = lambda: False,
) -> None:
    """Answer requests on the listening `sock` until Ctrl-C or SIGTERM; a stop request is
    passed on to `others` (a serveworkers.Workers) as it comes. `stopped()`: a stop request
    came before the server took the signals over (it then stops at once)."""
    seconds = body_timeout()
    config = uvicorn.Config(
        create_app(predictor, body_seconds=seconds),
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        http=headers_deadline_protocol(seconds),
    )
    # the cancelled requests got their 503 and one line from us; not uvicorn's ERROR too
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "graceful shutdown exceeded" not in record.getMessage()
    )
    # a 500's traceback, whole, on stderr (the CLI's own handler prints messages only)
    traces = logging.StreamHandler(sys.stderr)
    traces.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [traces]
    log.propagate = False

    class Server(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if stopped():
                self.should_exit = True

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.should_exit:  # a second Ctrl-C: already stopping, within SHUTDOWN_GRACE
                return  # (uvicorn's forced exit left its lifespan task to log a traceback)
            if others is not None:  # the workers start their grace period with ours
                others.signal(signal.SIGTERM)
            super().handle_exit(sig, frame)

    # as uvicorn.run: the stop request that ended it is noted, and raised by serve()
    with contextlib.suppress(KeyboardInterrupt):
        Server(config).run(sockets=[sock])
