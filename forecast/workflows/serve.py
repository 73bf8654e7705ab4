"""`forecast serve`: an HTTP server over one loaded run (FastAPI on uvicorn).

The run is loaded once, at start, in safe mode (`api.Predictor`); every request is parsed
into the same `Series` that `forecast predict --csv` reads (a JSON history is written out as
CSV text and goes through the same reader), so the answers are `predict`'s numbers.

    GET  /health    {"status": "ok", "run": NAME}
    GET  /info      layout, columns, input_steps, history_rows, horizon, interval levels
    POST /forecast  JSON {"history": [{<time column>: ..., <col>: ...}, ...], "horizon": H}
                    or a CSV body (Content-Type: text/csv; horizon as ?horizon=H)
                    -> {"run": NAME, "forecast": [{<time column>: ..., <target>: ...,
                        <target>_lo_80: ..., ...}], "warnings": [...]}

A bad request gets a 4xx with {"error": one line naming the field or column}; the server
keeps serving. Forecasts run in a worker thread, one at a time per model (a lock), so the
event loop keeps answering while one is computed.

A client that does not send its whole body within BODY_TIMEOUT seconds (the environment
variable FORECAST_SERVE_BODY_TIMEOUT, if set) gets a 408 and is dropped; one that connects
and does not finish its request's headers within that time is dropped without an answer; an idle
keep-alive connection is closed after KEEP_ALIVE seconds; on Ctrl-C or SIGTERM the server
takes no new request and gives running ones SHUTDOWN_GRACE seconds (then a 503), whatever its
clients do. No OpenAPI schema or docs pages are
served: /info is the one description of what to send.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from forecast.errors import ConfigError, ForecastError

# imported by `forecast serve` only (FastAPI resolves the handlers' annotations from this
# module's globals, so Request must be one)
MAX_BODY = 5_000_000  # bytes; a longer history than that is no one-origin forecast
MAX_HORIZON = 1000  # steps per request: a longer loop would hold the model from every other
DRAIN = 4  # an over-long body is read (and dropped) up to DRAIN x MAX_BODY before answering
# seconds for a whole body to arrive (5 MB at 170 kB/s): a stalled client holds no worker
BODY_TIMEOUT = 30.0
KEEP_ALIVE = 5  # seconds an idle connection stays open between requests
SHUTDOWN_GRACE = 3  # seconds requests get to finish after Ctrl-C or SIGTERM; then cancelled


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


def history_csv(payload: Any, decimal: str = ".") -> tuple[bytes, Any]:
    """A JSON body -> (the history as CSV bytes in the run's number format, the horizon
    asked or None)."""
    import pandas as pd

    if not isinstance(payload, dict):
        raise BadRequest(400, 'body: must be a JSON object {"history": [...], "horizon": H}')
    unknown = sorted(set(payload) - {"history", "horizon"})
    if unknown:
        raise BadRequest(
            400, f"body: unknown field '{unknown[0]}'; the fields are history, horizon"
        )
    history = payload.get("history")
    if not isinstance(history, list) or not history:
        raise BadRequest(400, "history: must be a non-empty list of rows ({column: value})")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            raise BadRequest(400, f"history[{i}]: must be an object {{column: value}}")
    # written as the run's reader expects: with a decimal comma, `;` between fields
    sep = ";" if decimal == "," else ","
    text = pd.DataFrame(history).to_csv(index=False, sep=sep, decimal=decimal)
    return text.encode("utf-8"), payload.get("horizon")


def parse_horizon(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_HORIZON:
        raise BadRequest(400, f"horizon: must be an integer from 1 to {MAX_HORIZON}, got {value!r}")
    return value


def records(frame: Any) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: NaN (a bound past the calibrated steps) becomes null."""
    rows = frame.to_dict(orient="records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in rows
    ]


def run_info(predictor: Any) -> dict[str, Any]:
    from forecast.workflows.export import input_rows

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


def create_app(predictor: Any, max_body: int = MAX_BODY, body_seconds: float = BODY_TIMEOUT) -> Any:
    """The FastAPI application answering for `predictor` (an `api.Predictor`); a request
    body must arrive within `body_seconds`."""
    from forecast.data.reading import read_panel, read_series

    name = predictor.run.name
    info = run_info(predictor)
    lock = threading.Lock()
    # no docs pages, and so no schema either: /info says what to send
    app = FastAPI(title="forecast", version="1", docs_url=None, redoc_url=None, openapi_url=None)

    def error(status: int, message: str) -> JSONResponse:
        message = " ".join(message.splitlines())  # one line, whatever was raised
        # after a 408 the rest of the body may still come: the connection is not reused
        close = {"Connection": "close"} if status == 408 else None
        return JSONResponse({"error": message}, status_code=status, headers=close)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(
                404, f"{request.url.path}: no such endpoint; try /health, /info, /forecast"
            )
        if exc.status_code == 405:
            return error(405, f"{request.method} {request.url.path}: method not allowed")
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, f"request: {exc.errors()[0].get('msg', 'invalid')}")

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
        with lock:
            frame, warnings = predictor.forecast(series, horizon, asked_as="horizon={}")
        return {"run": name, "forecast": records(frame), "warnings": warnings}

    @app.post("/forecast")
    async def post_forecast(request: Request) -> Any:
        try:
            body = await body_of(request)
            kind = request.headers.get("content-type", "application/json").split(";")[0]
            kind = kind.strip().lower()
            from_json = kind not in ("text/csv", "application/csv")
            if not from_json:
                raw, horizon = body, request.query_params.get("horizon")
            elif kind in ("application/json", ""):
                try:
                    payload = json.loads(body)
                except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                    raise BadRequest(400, f"body: not valid JSON ({exc})") from None
                raw, horizon = history_csv(payload, predictor.config.data.decimal)
                asked = parse_horizon(request.query_params.get("horizon"))  # as for CSV
                horizon = parse_horizon(horizon)
                if asked is not None and horizon is not None and asked != horizon:
                    raise BadRequest(
                        400, f"horizon: ?horizon={asked} and the body's {horizon}; give one"
                    )
                horizon = asked if horizon is None else horizon
            else:
                raise BadRequest(415, f"Content-Type {kind}: send application/json or text/csv")
            return await run_in_threadpool(answer, raw, parse_horizon(horizon), from_json)
        except BadRequest as exc:
            return error(exc.status, str(exc))
        except ForecastError as exc:  # the reader's and the model's one-line messages
            return error(400, str(exc))
        except Exception as exc:  # a bug: still one JSON line, and the server goes on
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
    from uvicorn.protocols.http.h11_impl import H11Protocol

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


def serve(predictor: Any, host: str, port: int) -> None:
    """Run the server until Ctrl-C or SIGTERM."""
    import socket

    import uvicorn

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"--host {host} --port {port}: cannot listen ({exc.strerror})"
            ) from None
    seconds = body_timeout()
    app = create_app(predictor, body_seconds=seconds)
    # the cancelled requests got their 503 and one line from us; not uvicorn's ERROR too
    logging.getLogger("uvicorn.error").addFilter(
        lambda record: "graceful shutdown exceeded" not in record.getMessage()
    )
    logging.getLogger("forecast").info(
        "serving %s on http://%s:%d (Ctrl-C stops)", predictor.run.name, host, port
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
        http=headers_deadline_protocol(seconds),
    )
    # uvicorn stops on Ctrl-C or SIGTERM and passes the signal on to our handlers, which
    # note it: exit 130 or 143 as every other command does
    from forecast.interrupts import raise_if_stop_requested

    raise_if_stop_requested()
