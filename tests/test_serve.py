"""`forecast serve` as a real server: a subprocess on a free loopback port, real HTTP.

One run is trained for one epoch; the server answers /health, /info and /forecast (JSON and
CSV bodies) with `forecast predict`'s numbers for the same rows, 50 concurrent requests
alike, bad requests with a 4xx and a one-line error while it keeps serving, and it stops on
SIGTERM by itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecast import api
from forecast.data.reading import read_series
from tests.conftest import monthly_frame, write_config, write_csv

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body: bytes | None = None, kind: str = "application/json") -> tuple:
    """(status, parsed JSON answer) of a GET (no body) or POST."""
    headers = {"Content-Type": kind} if body is not None else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def served_run(folder: Path, name: str = "served") -> tuple[Path, Path]:
    """(run dir, a 30-row recent history CSV) of a one-epoch run with horizon 3."""
    write_csv(folder / "s.csv", monthly_frame(120))
    config = write_config(
        folder / "c.yaml",
        name=name,
        seed=2,
        data={"path": "s.csv", "time_column": "date", "features": ["sales"], "transform": "diff"},
        window={"input_steps": 12, "horizon": 3},
        model={"architecture": "lstm", "units": [8]},
        training={"epochs": 1, "batch_size": 16},
    )
    run_dir = api.train(config, runs_dir=folder / "runs", quiet=True).run_dir
    return run_dir, write_csv(folder / "recent.csv", monthly_frame(130, seed=5).tail(30))


def start_server(
    run_dir: Path,
    env: dict[str, str] | None = None,
    code: str | None = None,
    args: tuple[str, ...] = (),
) -> tuple[str, subprocess.Popen]:
    """`python -m forecast serve` on a free port, once it answers /health: (base URL, it).
    With `code`, `python -c code serve ...` instead (code that ends by calling main())."""
    port = free_port()
    command = ["-c", code] if code else ["-m", "forecast"]
    process = subprocess.Popen(
        [sys.executable, *command, "serve", "--run", str(run_dir), "--port", str(port), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stderr.read().decode()}")
        try:
            if request(f"{base}/health")[0] == 200:
                return base, process
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    process.kill()
    process.communicate()
    pytest.fail("server did not answer /health within 120 s")


def stop(process: subprocess.Popen) -> str:
    """Kill the server if it still runs; what it wrote to stderr."""
    if process.poll() is None:
        process.kill()
    return process.communicate(timeout=30)[1].decode()  # waits; a second call answers again


def files_of(folder: Path) -> dict[str, tuple[int, int]]:
    """name -> (size, mtime in ns) of every file under `folder`."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, run dir, history CSV path, predict's forecast of it, the process)."""
    folder = tmp_path_factory.mktemp("serve")
    run_dir, history = served_run(folder)
    before = files_of(run_dir)
    base, process = start_server(run_dir)  # it converts the network to ONNX, in memory
    assert files_of(run_dir) == before  # serve writes nothing
    api.predict(run_dir, history, output=folder / "first.csv")  # Keras; keeps model.onnx
    expected, _ = api.predict(run_dir, history, output=folder / "predicted.csv")  # from it
    yield base, run_dir, history, expected, process
    stop(process)


def json_body(history: Path, horizon: int | None = None) -> bytes:
    rows = pd.read_csv(history).to_dict(orient="records")
    payload = {"history": rows} | ({"horizon": horizon} if horizon else {})
    return json.dumps(payload).encode()


def test_health_and_info(server) -> None:
    base, run_dir, _, _, _ = server
    assert request(f"{base}/health") == (200, {"status": "ok", "run": run_dir.name})
    status, info = request(f"{base}/info")
    assert status == 200
    assert info["run"] == run_dir.name and info["layout"] == "univariate_multi_step"
    assert (info["input_steps"], info["history_rows"], info["horizon"]) == (12, 13, 3)
    assert info["time_column"] == "date" and info["targets"] == ["sales"]
    assert info["intervals"] == [80, 95]


def test_forecast_is_predicts(server) -> None:
    base, _, history, expected, _ = server
    for body, kind in (
        (json_body(history), "application/json"),
        (history.read_bytes(), "text/csv"),
    ):
        status, answer = request(f"{base}/forecast", body, kind)
        assert status == 200, answer
        got = pd.DataFrame(answer["forecast"])
        assert list(got.columns) == list(expected.columns)  # date, sales, sales_lo_80, ...
        assert list(got["date"]) == list(expected["date"])
        np.testing.assert_allclose(got.drop(columns="date"), expected.drop(columns="date"))
    # another horizon: as in the body, or as ?horizon= with CSV
    status, answer = request(f"{base}/forecast", json_body(history, 2))
    assert status == 200 and len(answer["forecast"]) == 2
    status, answer = request(f"{base}/forecast?horizon=1", history.read_bytes(), "text/csv")
    assert status == 200 and len(answer["forecast"]) == 1
    assert answer["forecast"][0]["sales"] == pytest.approx(expected["sales"][0])


def test_fifty_concurrent_requests(server) -> None:
    base, _, history, expected, _ = server
    body = json_body(history)
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: request(f"{base}/forecast", body), range(50)))
    assert all(status == 200 for status, _ in answers)
    forecasts = {tuple(row["sales"] for row in answer["forecast"]) for _, answer in answers}
    (only,) = forecasts  # every answer the same
    np.testing.assert_allclose(only, expected["sales"])


def test_concurrent_requests_of_different_histories_each_get_their_own_forecast(
    server, tmp_path: Path
) -> None:
    """24 requests at once, each its own history: half 27 steps ahead (9 recursive model
    calls: worker threads sharing batched calls), half 3 (answered on the event loop, each
    its own call); each gets the numbers a forecast of its history alone gives (to float
    rounding)."""
    from forecast.data.reading import read_series
    from forecast.workflows.predictor import Predictor

    base, run_dir, _, _, _ = server
    alone = Predictor(run_dir)  # no sharing: one history at a time
    cases = []
    for i in range(24):
        history = write_csv(tmp_path / f"h{i}.csv", monthly_frame(130, seed=10 + i).tail(20 + i))
        horizon = 3 if i % 2 else 27
        series = read_series(alone.config.data, path=history)
        expected, _ = alone.forecast(series, horizon)
        cases.append((history.read_bytes(), horizon, expected))

    def ask(case: tuple) -> tuple:
        body, horizon, _ = case
        return request(f"{base}/forecast?horizon={horizon}", body, "text/csv")

    with ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(ask, cases))
    for (status, answer), (_, horizon, expected) in zip(answers, cases, strict=True):
        assert status == 200, answer
        got = pd.DataFrame(answer["forecast"])
        assert len(got) == horizon and list(got["date"]) == list(expected["date"])
        np.testing.assert_allclose(
            got.drop(columns="date"), expected.drop(columns="date"), rtol=1e-5
        )


def test_bad_requests_get_one_line_and_the_server_keeps_serving(server) -> None:
    base, _, history, _, _ = server
    rows = pd.read_csv(history).to_dict(orient="records")
    text_in_number = [dict(r) for r in rows]
    text_in_number[4]["sales"] = "lots"
    cases = [
        (b'{"history": [', "application/json", 400, "body: not valid JSON"),
        (
            json.dumps({"history": [{"date": r["date"]} for r in rows]}),
            None,
            400,
            "no column 'sales'",
        ),
        (json.dumps({"history": rows[:5]}), None, 400, "the model needs the last 13"),
        (json.dumps({"history": text_in_number}), None, 400, "history[4].sales: 'lots' is not"),
        (json.dumps({"history": rows, "horizon": -1}), None, 400, "horizon: must be an integer"),
        (json.dumps({"rows": rows}), None, 400, "unknown field 'rows'"),
        (b"x" * 6_000_000, "text/csv", 413, "over the limit"),
        (b"date,sales\n", "text/plain", 415, "send application/json or text/csv"),
    ]
    for body, kind, status, words in cases:
        raw = body if isinstance(body, bytes) else body.encode()
        got, answer = request(f"{base}/forecast", raw, kind or "application/json")
        assert got == status, (words, answer)
        assert list(answer) == ["error"] and words in answer["error"], answer
        assert "\n" not in answer["error"]
    assert request(f"{base}/nowhere")[0] == 404
    assert request(f"{base}/health")[0] == 200  # still serving
    assert request(f"{base}/forecast", json_body(history))[0] == 200


def test_stops_on_sigterm(server) -> None:
    base, _, _, _, process = server
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    # stopped cleanly, with the exit code of every other command stopped by SIGTERM
    assert process.returncode == 143
    lines = [line for line in err.decode().splitlines() if line.strip()]
    assert lines[-1] == "terminated; the server stopped" and "Traceback" not in err.decode()
    assert lines[-2].startswith("serving ")
    with pytest.raises(urllib.error.URLError):
        request(f"{base}/health")


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def gone(pid: int, seconds: float) -> bool:
    """True once process `pid` no longer exists (or is a zombie), within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def answered_without(process: subprocess.Popen, base: str, body: bytes) -> list[tuple]:
    """With the command's own process stopped (SIGSTOP), 8 concurrent forecasts: the workers
    on the same port answer them (waiting up to 120 s for a worker to load the model)."""
    process.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if request(f"{base}/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "no worker answered within 120 s"
            time.sleep(0.3)
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda _: request(f"{base}/forecast", body), range(8)))
    finally:
        process.send_signal(signal.SIGCONT)


def test_workers_answer_on_the_same_port_and_stop_with_the_server(server) -> None:
    """`--workers 2`: a second process answers on the port with predict's numbers (while the
    first is stopped, only it can); SIGTERM stops both, exit 143."""
    _, run_dir, history, expected, _ = server
    base, process = start_server(run_dir, args=("--workers", "2"))
    try:
        (worker,) = children(process.pid)
        answers = answered_without(process, base, json_body(history))
        for status, answer in answers:
            assert status == 200, answer
            np.testing.assert_allclose([r["sales"] for r in answer["forecast"]], expected["sales"])
        assert request(f"{base}/forecast", json_body(history))[0] == 200  # the first again
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 143, err.decode()
        assert err.decode().splitlines()[-1] == "terminated; the server stopped"
        assert "Traceback" not in err.decode()
        assert gone(worker, 0)  # stopped and waited for before the command ended
    finally:
        stop(process)


def loaded_libraries(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_served_as_onnx_equal_to_keras_within_1e5_and_workers_load_no_tensorflow(
    server, tmp_path
) -> None:
    """The server answers from ONNX: within 1e-5 of a Keras forecast, bit for bit as a
    predict from model.onnx. A run without model.onnx: the first process converts the
    network in memory (TensorFlow loaded there), writes nothing, and its `--workers`
    process gets the ONNX bytes on its stdin and loads no TensorFlow. With model.onnx
    there, the first process loads none either."""
    _, run_dir, history, expected, _ = server
    keras = api.Predictor(run_dir, runtime="tensorflow")
    by_keras, _ = keras.forecast(read_series(keras.config.data, path=history))
    np.testing.assert_allclose(
        by_keras.drop(columns="date"), expected.drop(columns="date"), rtol=1e-5
    )
    bare = tmp_path / run_dir.name
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("model.onnx"))
    base, process = start_server(bare, args=("--workers", "2"))
    try:
        (worker,) = children(process.pid)
        answers = answered_without(process, base, json_body(history))  # the worker's
        assert "tensorflow" in loaded_libraries(process.pid)  # it converted model.keras
        assert "onnxruntime" in loaded_libraries(worker)
        assert "tensorflow" not in loaded_libraries(worker)
        for status, answer in answers:  # 8 at once: batched calls, to float rounding
            assert status == 200, answer
            np.testing.assert_allclose([r["sales"] for r in answer["forecast"]], expected["sales"])
    finally:
        stop(process)
    assert not (bare / "model.onnx").exists()

    base, process = start_server(run_dir)
    try:
        assert "tensorflow" not in loaded_libraries(process.pid)
        status, answer = request(f"{base}/forecast", json_body(history))  # alone: bit for bit
        assert status == 200 and [r["sales"] for r in answer["forecast"]] == list(expected["sales"])
    finally:
        stop(process)


def test_a_worker_sent_another_models_onnx_stops_in_one_line(server, tmp_path) -> None:
    """A worker whose model.keras is not the model the ONNX bytes it was sent were made
    from (another run's) serves nothing: one line, exit 2."""
    _, run_dir, _, _, _ = server
    other, _ = served_run(tmp_path, name="other")
    onnx = (run_dir / "model.onnx").read_bytes()
    sha256 = api.Predictor(other).model_sha256
    port, listening, process = start_worker(other, sha256, runtime="onnx")
    process.stdin.write(len(onnx).to_bytes(8, "big") + onnx)
    process.stdin.flush()
    with listening:
        err = worker_ended(process, 120)
    lines = err.strip().splitlines()
    assert process.returncode == 2, err
    assert len(lines) == 1 and "not the model the ONNX bytes were made from" in lines[0], lines


def test_a_lost_worker_is_said_and_an_orphaned_one_stops(server) -> None:
    """A worker killed while serving: one line on stderr, the others go on. The command's
    process killed (SIGKILL: nothing forwarded): its workers stop by themselves."""
    _, run_dir, history, _, _ = server
    base, process = start_server(run_dir, args=("--workers", "3"))
    workers = sorted(children(process.pid))
    try:
        first, second = workers
        os.kill(first, signal.SIGKILL)
        assert gone(first, 10)
        assert request(f"{base}/forecast", json_body(history))[0] == 200
        time.sleep(1)  # the server's watcher says it
        process.kill()
        err = stop(process)
        assert f"warning: serve: worker process {first} was killed (signal 9)" in err, err
        assert gone(second, 30), "a worker outlived its server"
    finally:
        stop(process)
        for pid in workers:
            if not gone(pid, 0):
                os.kill(pid, signal.SIGKILL)


def test_ctrl_c_twice_stops_it_once_without_a_traceback(server) -> None:
    """A second (and third) Ctrl-C while the server stops is the same stop: exit 130, one
    line (uvicorn's forced exit used to leave its lifespan task logging a traceback)."""
    _, run_dir, history, _, _ = server
    base, process = start_server(run_dir)
    try:
        assert request(f"{base}/forecast", json_body(history))[0] == 200
        for pause in (0.05, 0.3, 0):
            process.send_signal(signal.SIGINT)
            time.sleep(pause)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err.decode()
        assert "Traceback" not in err.decode(), err.decode()
        assert err.decode().splitlines()[-1] == "interrupted; the server stopped"
    finally:
        stop(process)


def test_a_json_history_is_written_in_the_runs_number_format():
    """With data.decimal ',', the history goes to the reader as `;`-separated decimal commas
    (a comma-separated file would clash with the decimal comma)."""
    from forecast.workflows.serve import history_csv

    rows = [{"day": "2020-01-01", "value": 1.5}, {"day": "2020-01-02", "value": 2.25}]
    assert history_csv(rows, ",") == b"day;value\n2020-01-01;1,5\n2020-01-02;2,25\n"
    assert history_csv(rows) == b"day,value\n2020-01-01,1.5\n2020-01-02,2.25\n"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", 'body: must be a JSON object {"history": [...], "horizon": H}'),
        (b'{"zz": 1, "aa": 2}', "body: unknown field 'aa'; the fields are history, horizon"),
        (b"{}", "history: must be a non-empty list of rows ({column: value})"),
        (b'{"history": []}', "history: must be a non-empty list of rows ({column: value})"),
        (b'{"history": [{"a": 1}, 2]}', "history[1]: must be an object {column: value}"),
        (b'{"history": [{}], "horizon": 0}', "horizon: must be an integer from 1 to 1000, got 0"),
        (b'{"history": [{}], "horizon": "0"}', "horizon: must be an integer from 1 to 1000, got 0"),
        (
            b'{"history": [{}], "horizon": 2.0}',
            "horizon: must be an integer from 1 to 1000, got 2.0",
        ),
        (
            b'{"history": [{}], "horizon": true}',
            "horizon: must be an integer from 1 to 1000, got True",
        ),
        (
            b'{"history": [{}], "horizon": "2_0"}',
            "horizon: must be an integer from 1 to 1000, got '2_0'",
        ),
    ],
)
def test_a_json_body_is_checked_by_its_model_in_one_line(body: bytes, message: str) -> None:
    from forecast.workflows.serve import BadRequest, parse_body

    with pytest.raises(BadRequest) as caught:
        parse_body(body)
    assert (caught.value.status, str(caught.value)) == (400, message)


def test_a_json_body_horizon_may_be_a_number_or_its_digits() -> None:
    from forecast.workflows.serve import parse_body

    for horizon in ("5", '"5"', '" +5 "', '"05"'):
        parsed = parse_body(b'{"history": [{"a": 1}], "horizon": %s}' % horizon.encode())
        assert (parsed.history, parsed.horizon) == ([{"a": 1}], 5)
    assert parse_body(b'{"history": [{"a": 1}], "horizon": null}').horizon is None


def start_worker(
    run_dir: Path, sha256: str, runtime: str = "tensorflow"
) -> tuple[int, socket.socket, subprocess.Popen]:
    """A worker process alone (as `serve --workers` starts it) on a listening socket of the
    test's: (port, the socket, the process)."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen(16)
    process = subprocess.Popen(
        [sys.executable, "-m", "forecast.workflows.server", str(run_dir),
         str(listening.fileno()), sha256, runtime],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(listening.fileno(),),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    return listening.getsockname()[1], listening, process


def worker_ended(process: subprocess.Popen, seconds: float) -> str:
    """Its stderr once it ends by itself (its stdin kept open until then: the end of its
    stdin would stop it, so no communicate())."""
    err = process.stderr.read().decode()
    process.wait(timeout=seconds)
    process.stdin.close()
    process.stderr.close()
    return err


def test_a_worker_whose_model_changed_says_so_in_one_line(server) -> None:
    """A worker that finds another model.keras than the server loaded (its SHA-256) serves
    nothing: one line, exit 2 (the server then adds nothing), and a clean exit."""
    _, run_dir, _, _, _ = server
    port, listening, process = start_worker(run_dir, "0" * 64)
    with listening:
        err = worker_ended(process, 120)
    lines = err.strip().splitlines()
    assert process.returncode == 2, err
    assert len(lines) == 1 and "model.keras changed since the server started" in lines[0], lines


def test_a_stopped_worker_answers_503_to_what_it_holds_and_exits_cleanly(server) -> None:
    """SIGTERM to a worker holding a request whose body never comes: after the grace
    period the client gets the 503 the first process gives, and the worker exits without
    an abort (a thread reading its stdin must not hold the interpreter's exit)."""
    _, run_dir, _, _, _ = server
    sha256 = api.Predictor(run_dir).model_sha256
    port, listening, process = start_worker(run_dir, sha256)
    try:
        deadline = time.monotonic() + 120
        while True:  # the worker answers once its model is loaded
            try:
                if request(f"http://127.0.0.1:{port}/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline and process.poll() is None, "worker not up"
            time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(
                b"POST /forecast HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{"
            )
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503"), answer
        err = worker_ended(process, 30)
        assert "Fatal Python error" not in err and "Traceback" not in err, err
        assert process.returncode == 0, err
    finally:
        listening.close()
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_the_onnx_bytes_reach_a_worker_whole_or_not_at_all() -> None:
    """`send` and `received` over a real pipe: 3 MB (far past the pipe's buffer) arrive
    byte for byte; a pipe closed mid-way (the first process gone) gives None; a pipe
    closed by the reader's side makes `send` give up without raising."""
    from forecast.workflows.server import received, send

    payload = np.random.default_rng(0).bytes(3_000_000)
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb", buffering=0) as stream:
        sender = threading.Thread(target=send, args=(stream, payload))
        sender.start()
        assert received(read_end) == payload
        sender.join(10)
    os.close(read_end)

    read_end, write_end = os.pipe()
    os.write(write_end, (1000).to_bytes(8, "big") + b"x" * 10)  # 10 of the 1,000 bytes
    os.close(write_end)
    assert received(read_end) is None
    os.close(read_end)

    read_end, write_end = os.pipe()
    os.close(read_end)  # the worker is gone
    with os.fdopen(write_end, "wb", buffering=0) as stream:
        send(stream, payload)  # EPIPE: nothing raised


def test_serve_runs_one_process_per_core_by_default_when_it_serves_onnx() -> None:
    """`--workers auto`, the default: one process per core up to 4 as ONNX (cheap: no
    TensorFlow in the workers); one with Keras (each would hold TensorFlow)."""
    from forecast.workflows.server import serve_workers

    assert [serve_workers(True, cores) for cores in (1, 2, 3, 4, 64)] == [1, 2, 3, 4, 4]
    assert [serve_workers(False, cores) for cores in (1, 2, 64)] == [1, 1, 1]


def test_a_worker_stopped_while_it_loads_exits_without_a_traceback(server) -> None:
    """SIGTERM at any moment of a worker's load (reading the ONNX bytes, importing
    onnxruntime, opening the session) or just after: a clean exit, nothing on stderr (a
    stop request inside onnxruntime's import came back as its "ImportError: initialization
    failed", about one run in two at 0.5 s before the fix)."""
    _, run_dir, _, _, _ = server
    onnx = (run_dir / "model.onnx").read_bytes()
    sha256 = api.Predictor(run_dir).model_sha256
    for delay in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8):
        _, listening, process = start_worker(run_dir, sha256, runtime="onnx")
        with listening:
            process.stdin.write(len(onnx).to_bytes(8, "big") + onnx)
            process.stdin.flush()
            time.sleep(delay)
            process.send_signal(signal.SIGTERM)
            err = worker_ended(process, 60)
        # 143 while it loads, 0 once it serves (it then stops as the first process asks),
        # -15 before Python has set its handler
        assert process.returncode in (143, 0, -signal.SIGTERM), (delay, err)
        assert err.strip() == "", (delay, err)
