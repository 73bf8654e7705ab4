"""`forecast serve` against clients that misbehave, and what it tells those that do not.

A real server (a subprocess on a free loopback port, as in test_serve.py) with its body
timeout set to 2 s: a client that stops halfway through its body gets a 408 and is dropped;
SIGTERM stops the server within seconds while such a client hangs on; no OpenAPI schema is
served (there are no docs pages either); /info names every column a POST needs, the time
column included; a warning answers the request in its own words (horizon=5, not the CLI's
--horizon 5, which `predict` keeps: test_cli.py); values no float32 can hold get a 400 with
one line; a bug answers a short 500 and its traceback goes to stderr; a port that cannot be
listened on is one line, exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from tests.test_serve import json_body, request, served_run, stop
from tests.test_serve import start_server as serve

pytestmark = pytest.mark.slow

BODY_TIMEOUT = 2  # seconds, FORECAST_SERVE_BODY_TIMEOUT of the servers started here


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run dir, a 30-row recent history CSV) of a one-epoch run with horizon 3."""
    return served_run(tmp_path_factory.mktemp("hardening"), name="hardened")


def start_server(run_dir, body_timeout: float = BODY_TIMEOUT) -> tuple[str, int, subprocess.Popen]:
    """`python -m forecast serve` with this body timeout: (base URL, port, it)."""
    base, process = serve(run_dir, {"FORECAST_SERVE_BODY_TIMEOUT": str(body_timeout)})
    return base, int(base.rsplit(":", 1)[1]), process


@pytest.fixture(scope="module")
def server(trained):
    """(base URL, port, history CSV path) of a server kept for the module's tests."""
    run_dir, history = trained
    base, port, process = start_server(run_dir)
    yield base, port, history
    stop(process)


def stalled_client(port: int) -> socket.socket:
    """A connection that sent its headers (Content-Length: 1000) and 10 bytes of body, and
    then nothing."""
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(
        b"POST /forecast HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"history"'
    )
    return client


def read_until_closed(client: socket.socket) -> bytes:
    answer = b""
    while chunk := client.recv(65536):  # b"" once the server closes the connection
        answer += chunk
    return answer


def test_a_stalled_body_gets_408_and_is_dropped(server) -> None:
    base, port, _ = server
    client = stalled_client(port)
    start = time.monotonic()
    with client:
        answer = read_until_closed(client)  # socket timeout 30 s: a hang fails here
    waited = time.monotonic() - start
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer
    error = json.loads(body)["error"]
    assert error.startswith("body: ") and f"{BODY_TIMEOUT}" in error and "\n" not in error
    assert BODY_TIMEOUT - 0.5 < waited < BODY_TIMEOUT + 5  # timed out by the setting
    assert request(f"{base}/health")[0] == 200  # still serving


def test_sigterm_stops_the_server_while_a_client_hangs_mid_body(trained) -> None:
    from forecast.workflows.serve import SHUTDOWN_GRACE

    run_dir, _ = trained
    # no body timeout before the shutdown's: the hung request is still open at SIGTERM
    _, port, process = start_server(run_dir, body_timeout=60)
    try:
        with stalled_client(port) as client:
            time.sleep(0.5)  # the request is being read
            start = time.monotonic()
            process.send_signal(signal.SIGTERM)
            answer = read_until_closed(client)
            answered = time.monotonic() - start
            try:
                _, err = process.communicate(timeout=10 - answered)
            except subprocess.TimeoutExpired:
                pytest.fail("the server did not stop within 10 s of SIGTERM")
    finally:
        stop(process)
    # the hung client is told, once the grace time is up; then the process ends
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer
    assert json.loads(body)["error"].startswith("server: stopping; send the request again")
    assert SHUTDOWN_GRACE <= answered < SHUTDOWN_GRACE + 3
    assert process.returncode == 143, err.decode()
    assert "terminated; the server stopped" in err.decode()
    assert "Traceback" not in err.decode()
    assert "graceful shutdown exceeded" not in err.decode()  # our 503 said it; no uvicorn ERROR


@pytest.mark.parametrize("sent", [b"", b"POST /forecast HTTP/1.1\r\nHost: x\r\n"])
def test_a_client_that_never_finishes_its_headers_is_dropped(server, sent) -> None:
    """Connecting and sending nothing, or half a request head, holds no socket past the
    body timeout (2 s here): the server closes the connection."""
    base, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=15) as client:
        client.sendall(sent)
        start = time.monotonic()
        assert client.recv(1024) == b""  # closed by the server, no answer
        waited = time.monotonic() - start
    assert BODY_TIMEOUT - 0.5 <= waited < BODY_TIMEOUT + 5
    assert request(f"{base}/health")[0] == 200  # and it keeps serving


def test_half_the_headers_of_a_second_request_are_dropped_too(server) -> None:
    """After one answered request on a keep-alive connection, half a second request head
    holds the socket no longer than the first request's would."""
    _, port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=15) as client:
        client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b"}"):  # the head and the JSON body may come apart
            chunk = client.recv(4096)
            assert chunk, answer  # the connection is not closed before the answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        client.sendall(b"POST /forecast HTTP/1.1\r\nHost: x\r\n")
        start = time.monotonic()
        assert client.recv(1024) == b""
        waited = time.monotonic() - start
    assert waited < BODY_TIMEOUT + 5


def test_no_openapi_schema_is_served_without_docs(server) -> None:
    base, _, _ = server
    for path in ("/openapi.json", "/docs", "/redoc"):
        status, answer = request(f"{base}{path}")
        assert status == 404 and answer["error"].startswith(f"{path}: no such endpoint")


def test_info_names_the_time_column_among_the_columns_to_send(server) -> None:
    base, _, history = server
    status, info = request(f"{base}/info")
    assert status == 200
    assert info["time_column"] == "date"
    assert info["columns"] == ["date", "sales"]
    # exactly those columns make a good request
    rows = pd.read_csv(history)[info["columns"]].to_dict(orient="records")
    assert request(f"{base}/forecast", json.dumps({"history": rows}).encode())[0] == 200


def test_a_warning_names_the_horizon_as_the_request_gave_it(server) -> None:
    base, _, history = server
    status, answer = request(f"{base}/forecast", json_body(history, 5))
    assert status == 200, answer
    (past,) = [w for w in answer["warnings"] if "trained horizon" in w]
    assert past.startswith("horizon=5 goes past the trained horizon 3: steps 4-5 are forecast")
    status, answer = request(f"{base}/forecast?horizon=4", history.read_bytes(), "text/csv")
    assert status == 200, answer
    assert any(w.startswith("horizon=4 goes past") for w in answer["warnings"])
    assert not any("--horizon" in w for w in answer["warnings"])


def test_a_json_body_takes_the_horizon_from_the_query_too(server) -> None:
    base, _, history = server
    status, answer = request(f"{base}/forecast?horizon=5", json_body(history))
    assert status == 200, answer
    assert len(answer["forecast"]) == 5  # not the config's 3, silently
    status, answer = request(f"{base}/forecast?horizon=5", json_body(history, 4))
    assert status == 400
    assert answer["error"] == "horizon: ?horizon=5 and the body's 4; give one"


def test_values_past_float32_get_400(server) -> None:
    base, _, history = server
    rows = pd.read_csv(history).to_dict(orient="records")
    for row in rows[-5:]:
        row["sales"] = 1e308
    status, answer = request(f"{base}/forecast", json.dumps({"history": rows}).encode())
    assert status == 400, answer
    assert list(answer) == ["error"] and "\n" not in answer["error"]
    assert "sales" in answer["error"]


def test_the_body_timeout_setting(monkeypatch) -> None:
    from forecast.errors import ConfigError
    from forecast.workflows.serve import BODY_TIMEOUT, body_timeout

    monkeypatch.delenv("FORECAST_SERVE_BODY_TIMEOUT", raising=False)
    assert body_timeout() == BODY_TIMEOUT == 30
    monkeypatch.setenv("FORECAST_SERVE_BODY_TIMEOUT", "2.5")
    assert body_timeout() == 2.5
    for bad in ("soon", "0", "-1", "inf", "nan"):
        monkeypatch.setenv("FORECAST_SERVE_BODY_TIMEOUT", bad)
        with pytest.raises(ConfigError, match=f"^FORECAST_SERVE_BODY_TIMEOUT={bad}: must be"):
            body_timeout()


def test_a_refused_recursion_names_the_horizon_as_the_request_gave_it(tmp_path) -> None:
    """A multivariate model cannot go past its trained horizon by recursion (its extra
    input is no target): the 400 tells an HTTP client to ask for horizon=1 or less, while
    `predict` keeps the CLI's --horizon."""
    from typer.testing import CliRunner

    from forecast import api
    from forecast.cli.app import app

    from .conftest import monthly_frame, write_config, write_csv

    write_csv(tmp_path / "s.csv", monthly_frame(120))
    config = write_config(
        tmp_path / "m.yaml",
        name="multi",
        seed=2,
        data={
            "path": "s.csv",
            "time_column": "date",
            "features": ["sales", "price"],
            "targets": ["sales"],
        },
        window={"input_steps": 12, "horizon": 1},
        model={"architecture": "gru", "units": [4]},
        training={"epochs": 1, "batch_size": 16},
    )
    run_dir = api.train(config, runs_dir=tmp_path / "runs", quiet=True).run_dir
    base, process = serve(run_dir)
    try:
        csv = (tmp_path / "s.csv").read_bytes()
        status, answer = request(f"{base}/forecast?horizon=3", csv, "text/csv")
    finally:
        stop(process)
    assert status == 400
    assert "ask for horizon=1 or less" in answer["error"] and "--horizon" not in answer["error"]
    argv = ["predict", "--run", str(run_dir), "--csv", str(tmp_path / "s.csv"), "--horizon", "3"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "ask for --horizon 1 or less" in result.stderr


# the server's process with Predictor.forecast replaced by a bug
BROKEN_PREDICTOR = """
from forecast.api import Predictor
from forecast.cli.app import main


def broken(*args, **kwargs):
    raise ZeroDivisionError("float division by zero\\nin the model")


Predictor.forecast = broken
main()
"""


def test_an_internal_error_is_a_short_500_and_its_traceback_goes_to_stderr(trained) -> None:
    run_dir, history = trained
    base, process = serve(run_dir, code=BROKEN_PREDICTOR)
    try:
        status, answer = request(f"{base}/forecast", history.read_bytes(), "text/csv")
        assert request(f"{base}/health")[0] == 200  # still serving
    finally:
        err = stop(process)
    assert status == 500
    assert answer == {"error": "internal error: ZeroDivisionError: float division by zero"}
    # the server's log: where it failed, for whoever runs it
    assert "POST /forecast: internal error (answered 500)\nTraceback (most recent call last)" in err
    assert ", in answer\n" in err and 'File "<string>", line 7, in broken\n' in err
    assert err.rstrip().endswith("ZeroDivisionError: float division by zero\nin the model"), err


def test_a_port_in_use_is_one_line_and_exit_2(trained) -> None:
    """No probe before uvicorn starts: the server's own bind fails, worded as one line."""
    run_dir, _ = trained
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "forecast", "serve", "--run", str(run_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: --host 127.0.0.1 --port {port}: cannot listen (Address already in use)"
    ]


def test_a_host_that_is_no_address_is_one_line() -> None:
    from forecast.errors import ConfigError
    from forecast.workflows.server import listening_socket

    with pytest.raises(ConfigError) as caught:
        listening_socket("256.0.0.1", 8000)
    # the resolver's words (such as "Name or service not known") in the brackets
    message = str(caught.value)
    assert (
        message.startswith("--host 256.0.0.1 --port 8000: cannot listen (") and "\n" not in message
    )
    with listening_socket("127.0.0.1", 0) as sock:  # 0: a port the system chooses
        assert sock.getsockname()[0] == "127.0.0.1" and sock.getsockname()[1] > 0
