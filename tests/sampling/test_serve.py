"""`emu-video serve` driven over HTTP: 6 concurrent requests in fewer batches than requests, each video
equal to `emu-video sample --prompt P --seed S`; 400 / 401 / 429 / 404; /metrics parses; SIGTERM or
Ctrl-C drains a real server process, a second Ctrl-C stops it at once."""

import argparse
import concurrent.futures
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from emu_jax.sampling import cli as sample
from emu_jax.sampling import serve
from sampling_helpers import REPO, save

pytestmark = pytest.mark.slow
REQUESTS = [
    ("red circle moving left", 1),
    ("blue square moving up", 2),
    ("green triangle", 3),
    ("red circle moving left", 4),
    ("yellow circle moving down", 5),
    ("blue square moving up", 2),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, f_model):
    ckpt = save(f_model, str(tmp_path_factory.mktemp("serve") / "f"))
    engine = serve.Engine(
        ckpt, batch_size=4, max_wait_ms=3000, queue_size=8, max_steps=3, max_guidance=10, use_interp=False
    )
    from werkzeug.serving import make_server

    servers = [make_server("127.0.0.1", 0, serve.make_app(engine, token), threaded=True) for token in (None, "tok")]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield ckpt, engine, [f"http://127.0.0.1:{s.server_port}" for s in servers]
    engine.drain()
    for s in servers:
        s.shutdown()


def call(url, body=None, headers=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_done(base, job_id, headers=None):
    deadline = time.time() + 600
    while time.time() < deadline:
        _, body = call(f"{base}/v1/videos/{job_id}", headers=headers)
        view = json.loads(body)
        if view["status"] in ("done", "error"):
            return view
        time.sleep(0.2)
    raise AssertionError(f"{job_id} never finished: {view}")


def test_concurrent_requests_are_batched_and_match_the_cli(server, tmp_path):
    ckpt, engine, (base, _) = server
    batches_before = engine.m_batches._value.get()

    def one(req):
        prompt, seed = req
        status, body = call(f"{base}/v1/videos", {"prompt": prompt, "seed": seed, "steps": 1})
        assert status == 202, body
        job_id = json.loads(body)["id"]
        view = wait_done(base, job_id)
        assert view["status"] == "done", view
        _, npz = call(f"{base}/v1/videos/{job_id}.npz")
        code_mp4, mp4 = call(f"{base}/v1/videos/{job_id}.mp4")
        code_png, png = call(f"{base}/v1/videos/{job_id}.png")
        assert code_mp4 == code_png == 200 and mp4[4:8] == b"ftyp" and png[:4] == b"\x89PNG"
        return dict(np.load(io.BytesIO(npz)))

    with concurrent.futures.ThreadPoolExecutor(len(REQUESTS)) as pool:
        results = list(pool.map(one, REQUESTS))
    batches = engine.m_batches._value.get() - batches_before
    assert 1 <= batches < len(REQUESTS)
    assert np.abs(results[1]["video"].astype(int) - results[5]["video"].astype(int)).max() <= 2  # same request
    for i, ((prompt, seed), got) in enumerate(zip(REQUESTS[:5], results)):
        parser = argparse.ArgumentParser()
        sample.add_arguments(parser)
        out = tmp_path / str(i)
        args = parser.parse_args(
            [
                "--checkpoint",
                ckpt,
                "--prompt",
                prompt,
                "--seed",
                str(seed),
                "--steps",
                "1",
                "--no-interp",
                "--save-frames",
                "--quiet",
                "--out",
                str(out),
            ]
        )
        assert sample.main(args) == 0
        want = np.load(next(out.glob("*_frames.npz")))
        for k in ("keyframe", "video"):
            assert np.abs(want[k].astype(int) - got[k].astype(int)).max() <= 2, (i, k)


def test_bad_requests_auth_queue_and_metrics(server, monkeypatch):
    _, engine, (base, secured) = server
    for body, message in [
        ({"prompt": "x", "colour": 1}, "unknown field(s) ['colour']"),
        ({"prompt": "  "}, "prompt must be a non-empty string"),
        ({"prompt": "x" * 501}, "at most 500 allowed"),
        ({"prompt": "x", "steps": 4}, "steps must be in [1, 3], got 4"),
        ({"prompt": "x", "steps": 0}, "steps must be >= 1, got 0"),
        ({"prompt": "x", "guidance": {"text": 11}}, "guidance.text must be in [0, 10"),
        ({"prompt": "x", "guidance": {"text": -1}}, "guidance.text must be a finite number >= 0"),
        ({"prompt": "x", "seed": -3}, "seed must be an integer in [0, 2**31)"),
    ]:
        status, out = call(f"{base}/v1/videos", body)
        assert status == 400 and message in json.loads(out)["error"], (body, out)
    assert call(f"{secured}/v1/videos", {"prompt": "x"})[0] == 401
    assert call(f"{secured}/v1/videos/abc", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert call(f"{secured}/v1/videos/abc", headers={"Authorization": "Bearer tok"})[0] == 404
    assert call(f"{secured}/healthz")[0] == 200
    monkeypatch.setattr(engine, "queue_size", 0)  # a full queue without racing the worker
    status, out = call(f"{base}/v1/videos", {"prompt": "x"})
    assert status == 429 and "queue full" in json.loads(out)["error"]
    monkeypatch.undo()
    _, text = call(f"{base}/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    assert {"emu_requests", "emu_batches", "emu_batch_fill", "emu_queue_depth"} <= set(families)
    outcomes = {
        s.labels.get("outcome"): s.value for s in families["emu_requests"].samples if s.name == "emu_requests_total"
    }
    assert outcomes["bad_request"] >= 8 and outcomes["refused"] >= 1


def test_serve_refuses_public_bind_without_token(capsys):
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert serve.main(parser.parse_args(["--host", "0.0.0.0"])) == 2
    assert "give --token" in capsys.readouterr().err


def test_serve_rejects_bad_drain_seconds(capsys):
    parser = argparse.ArgumentParser()
    serve.add_arguments(parser)
    assert serve.main(parser.parse_args(["--drain-seconds", "nan"])) == 2
    assert "--drain-seconds must be >= 0, got nan" in capsys.readouterr().err


def wait_for(what, fn, timeout=300):
    deadline = time.monotonic() + timeout
    while not (got := fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return got


def start_server(tmp_path, f_model):
    """`emu-video serve` on `f_model` in a subprocess (batch 1, no wait): (process, its base URL, stdout file)."""
    ckpt = save(f_model, str(tmp_path / "f"))
    out_path, err_path = tmp_path / "out.log", tmp_path / "err.log"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device: the quickest compile
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=REPO, PYTHONUNBUFFERED="1")
    argv = ["serve", "--checkpoint", ckpt, "--no-interp", "--port", "0", "--batch-size", "1", "--max-wait-ms", "0"]
    with open(out_path, "w") as out, open(err_path, "w") as err:  # files, not pipes: logs can never block it
        proc = subprocess.Popen([sys.executable, "-m", "emu_jax.cli", *argv], cwd=REPO, stdout=out, stderr=err, env=env)
    text = wait_for("the server", lambda: "serving" in (t := out_path.read_text()) and t)
    return proc, text.split(" on ")[1].split()[0], out_path


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_finishes_the_batch_in_flight_and_refuses_new_work(tmp_path, f_model, sig):
    proc, base, out_path = start_server(tmp_path, f_model)
    try:
        ids = []
        for prompt in ("red circle moving left", "blue square"):  # batch size 1: the second one waits
            status, body = call(f"{base}/v1/videos", {"prompt": prompt, "seed": 1, "steps": 2})
            assert status == 202, body
            ids.append(json.loads(body)["id"])
        # Running from when the worker takes it, through the first batch's compile: the signal lands mid-batch.
        wait_for("a running request", lambda: json.loads(call(f"{base}/v1/videos/{ids[0]}")[1])["status"] == "running")
        proc.send_signal(sig)
        wait_for("the drain to start", lambda: f"{sig.name}: finishing" in out_path.read_text())
        status, body = call(f"{base}/v1/videos", {"prompt": "green triangle"})
        assert (status, json.loads(body)) == (503, {"error": "server is shutting down"})
        assert wait_done(base, ids[0])["status"] == "done"  # the batch in flight finished
        queued = json.loads(call(f"{base}/v1/videos/{ids[1]}")[1])
        assert queued["status"] == "error" and "shut down before this request ran" in queued["error"]
        code, mp4 = call(f"{base}/v1/videos/{ids[0]}.mp4")  # the last result fetched: the server may stop now
        assert code == 200 and mp4[4:8] == b"ftyp"
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    err_text = (tmp_path / "err.log").read_text()
    assert "Traceback" not in err_text, err_text


def test_second_ctrl_c_stops_at_once(tmp_path, f_model):
    proc, base, out_path = start_server(tmp_path, f_model)
    try:
        status, body = call(f"{base}/v1/videos", {"prompt": "red circle moving left", "seed": 1, "steps": 2})
        assert status == 202, body
        job = json.loads(body)["id"]
        wait_for("a running request", lambda: json.loads(call(f"{base}/v1/videos/{job}")[1])["status"] == "running")
        proc.send_signal(signal.SIGINT)
        wait_for("the drain to start", lambda: "SIGINT: finishing" in out_path.read_text())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert "SIGINT again: stopping now" in out_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert "Traceback" not in (tmp_path / "err.log").read_text()


def test_drain_refuses_a_batch_still_filling(tmp_path, f_model):
    engine = serve.Engine(save(f_model, str(tmp_path / "f")), batch_size=4, max_wait_ms=600_000, use_interp=False)
    job = engine.parse({"prompt": "red circle", "steps": 1})
    assert engine.submit(job)
    time.sleep(0.5)  # the worker now waits (up to 600 s) for three more requests to fill the batch
    engine.drain()
    engine.worker.join(timeout=30)
    assert not engine.worker.is_alive() and not engine.in_flight  # nothing was in flight
    assert job.status == "error" and "shut down before this request ran" in job.error
    assert not engine.submit(engine.parse({"prompt": "blue square"}))
    assert engine.wait_collected(0)  # nothing for a draining server to wait for
