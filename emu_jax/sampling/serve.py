"""`emu-video serve`: an HTTP server that batches concurrent sampling requests on one checkpoint.

    emu-video serve [--checkpoint MODEL] [--port 8000] [--batch-size 4] [--max-wait-ms 200]
    curl -s -X POST localhost:8000/v1/videos -H 'Content-Type: application/json' \
        -d '{"prompt": "a red circle moving left", "seed": 3}'            # -> 202 {"id": ...}
    curl -s localhost:8000/v1/videos/ID ; curl -so out.mp4 localhost:8000/v1/videos/ID.mp4

The batching itself is `emu_jax.sampling.batcher.Engine`; this module is its HTTP face and the
command line. SIGTERM or Ctrl-C drains (a second Ctrl-C stops at once, exit 130): new requests
get 503, the batch in flight finishes and its clients may fetch their videos for up to
`--drain-seconds`, queued requests end with an error, exit 0.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import sys
import threading
from typing import Any

from emu_jax.errors import UserError
from emu_jax.sampling.batcher import Engine

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def media(sample: Any, kind: str) -> bytes:
    """The final video as mp4, the keyframe as png, or the exact frames as npz."""
    import numpy as np
    from PIL import Image

    from emu_jax.data import video_io

    buf = io.BytesIO()
    if kind == "png":
        Image.fromarray(sample.keyframe).save(buf, format="PNG")
        return buf.getvalue()
    video, fps = (
        (sample.interpolated, sample.interp_fps) if sample.interpolated is not None else (sample.video, sample.fps)
    )
    if kind == "mp4":
        return video_io.encode_mp4(video, fps)
    np.savez(buf, keyframe=sample.keyframe, video=video)
    return buf.getvalue()


def make_app(engine: Engine, token: str | None = None):
    """The Flask app: /v1/videos, /v1/videos/<id>[.mp4|.png|.npz], /healthz, /metrics."""
    from flask import Flask, Response, jsonify, request
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    app = Flask("emu_jax.serve")

    @app.before_request
    def _auth():
        if token and request.path != "/healthz" and request.headers.get("Authorization") != f"Bearer {token}":
            return jsonify(error="missing or wrong bearer token (Authorization: Bearer TOKEN)"), 401
        return None

    @app.post("/v1/videos")
    def create():
        body = request.get_json(silent=True)
        try:
            job = engine.parse(body)
        except ValueError as e:
            engine.m_requests.labels("bad_request").inc()
            return jsonify(error=str(e).splitlines()[0]), 400
        if not engine.submit(job):
            engine.m_requests.labels("refused").inc()
            if engine.draining:
                return jsonify(error="server is shutting down"), 503
            return jsonify(error=f"queue full ({engine.queue_size} waiting); retry later"), 429
        return jsonify(id=job.id, status=job.status, warnings=job.warnings), 202

    @app.get("/v1/videos/<job_id>")
    def status(job_id: str):
        name, _, ext = job_id.partition(".")
        job = engine.get(name)
        if job is None:
            return jsonify(error=f"no video {name!r} (unknown, or removed after its keep time)"), 404
        if not ext:
            if job.status == "error":
                engine.collect(job)
            return jsonify(job.view())
        if ext not in ("mp4", "png", "npz"):
            return jsonify(error=f"unknown format {ext!r}; allowed: mp4, png, npz"), 404
        if job.status != "done":
            return jsonify(error=f"video {name} is {job.status}", **job.view()), 409
        types = {"mp4": "video/mp4", "png": "image/png", "npz": "application/octet-stream"}
        body = media(job.result, ext)
        engine.collect(job)
        return Response(body, mimetype=types[ext])

    @app.get("/healthz")
    def healthz():
        return jsonify(ok=not engine.draining, queue=len(engine.queue))

    @app.get("/metrics")
    def metrics():
        return Response(generate_latest(engine.registry), mimetype=CONTENT_TYPE_LATEST)

    return app


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from emu_jax.sampling.cli import DEMO_MODEL

    parser.add_argument("--checkpoint", default=DEMO_MODEL, help="model F (default: the bundled demo model)")
    parser.add_argument("--no-interp", action="store_true", help="serve F's video without interpolation")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need --token)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--token", default=None, help="bearer token every request except /healthz must carry")
    parser.add_argument("--batch-size", type=int, default=4, help="requests per compiled batch (default 4)")
    parser.add_argument("--max-wait-ms", type=float, default=200, help="longest wait to fill a batch (default 200)")
    parser.add_argument("--queue-size", type=int, default=64, help="queued requests before 429 (default 64)")
    parser.add_argument("--keep-results", type=int, default=256, help="finished videos kept (default 256)")
    parser.add_argument("--keep-seconds", type=float, default=3600, help="and for at most this long (default 3600)")
    parser.add_argument("--max-steps", type=int, default=100, help="largest steps a request may ask (default 100)")
    parser.add_argument("--max-guidance", type=float, default=20.0, help="largest guidance scale (default 20)")
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=30,
        help="on SIGTERM or Ctrl-C, after the batch in flight, serve its results this long at most (default 30)",
    )


def main(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    try:
        if args.host not in LOCAL_HOSTS and not args.token:
            raise UserError(f"--host {args.host} is reachable from other machines; give --token TOKEN")
        for flag in ("batch_size", "queue_size", "keep_results", "max_steps", "port"):
            if getattr(args, flag) < (0 if flag == "port" else 1):
                raise UserError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
        for flag in ("max_wait_ms", "keep_seconds", "max_guidance", "drain_seconds"):
            value, positive = getattr(args, flag), flag == "keep_seconds"
            if not (value > 0 if positive else value >= 0):  # written so that NaN fails too
                raise UserError(f"--{flag.replace('_', '-')} must be {'> 0' if positive else '>= 0'}, got {value}")
        engine = Engine(
            args.checkpoint,
            batch_size=args.batch_size,
            max_wait_ms=args.max_wait_ms,
            queue_size=args.queue_size,
            keep_results=args.keep_results,
            keep_seconds=args.keep_seconds,
            max_steps=args.max_steps,
            max_guidance=args.max_guidance,
            use_interp=not args.no_interp,
        )
    except (ValueError, FileNotFoundError) as e:
        print(f"emu-video serve: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    server = make_server(args.host, args.port, make_app(engine, args.token), threaded=True)

    def stop(signum, _frame):  # refuse new work, finish the batch in flight, let its clients fetch it, then stop
        name = signal.Signals(signum).name
        if engine.draining:
            if signum == signal.SIGINT:  # a second Ctrl-C: the user will not wait for the batch
                print(f"{name} again: stopping now, the batch in flight is lost", flush=True)
                os._exit(130)
            return
        engine.drain()
        again = " (Ctrl-C again stops now)" if signum == signal.SIGINT else ""
        print(f"{name}: finishing the batch in flight, refusing new requests{again}", flush=True)

        def shut():
            engine.worker.join()
            if not engine.wait_collected(args.drain_seconds):
                print(f"stopping with results not fetched after --drain-seconds {args.drain_seconds:g}", flush=True)
            server.shutdown()

        threading.Thread(target=shut, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"serving {args.checkpoint} on http://{args.host}:{server.server_port} (batch {args.batch_size}, "
        f"wait {args.max_wait_ms:g} ms)",
        flush=True,
    )
    server.serve_forever()
    return 0
