"""A real `emu-video juice serve` process: concurrent raters over HTTP, and votes
that survive the server being killed (SIGKILL) between requests."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from emu_jax.juice import db
from emu_jax.juice.app import form_nonce
from juice_helpers import form_fields

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GOOD = [
    ("quality", "right"),
    ("quality_reasons", "motion_smoothness"),
    ("faithfulness", "tie"),
    ("faithfulness_reasons", "spatial_alignment"),
]


@pytest.fixture
def server(make_study, tmp_path):
    path, s = make_study(raters_per_pair=5)
    log = open(tmp_path / "serve.log", "w+")  # a file, not a pipe: request logs can never block the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "emu_jax.cli", "juice", "serve", "--db", path, "--port", "0"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while "serving" not in (text := (tmp_path / "serve.log").read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, text
        time.sleep(0.05)
    base = text.split(" on ")[1].split()[0].rstrip("/")
    yield path, s.tokens, base, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    log.close()


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read().decode()


def _post(url, fields):
    req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # follows the 303 to the next page
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_votes_survive_kill(server):
    path, tokens, base, proc = server
    for tok in tokens[:2]:
        _, page = _get(f"{base}/r/{tok}")
        status, nxt = _post(f"{base}/r/{tok}/vote", list(form_fields(page).items()) + GOOD)
        assert status == 200 and "Pair 2 of 4" in nxt
    status, msg = _post(f"{base}/r/{tokens[2]}/vote", [("token", tokens[2]), ("pair_id", "1")])
    assert status == 400 and "nonce" in msg
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    conn = db.connect(path)
    rows = conn.execute("SELECT rater_id, quality_choice, faithfulness_winner FROM votes ORDER BY rater_id").fetchall()
    assert [tuple(r) for r in rows] == [(1, "right", "tie"), (2, "right", "tie")]


def test_concurrent_raters_over_http(server):
    path, tokens, base, _ = server
    secret = db.get_study(db.connect(path))["secret"]
    # Every rater was given every pair: all post their vote on pair 2 at once.
    pages = {tok: {"token": tok, "pair_id": "2", "nonce": form_nonce(secret, i + 1, 2)} for i, tok in enumerate(tokens)}
    barrier = threading.Barrier(len(tokens))
    results = []

    def rate(tok):
        barrier.wait()
        results.append(_post(f"{base}/r/{tok}/vote", list(pages[tok].items()) + GOOD)[0])

    threads = [threading.Thread(target=rate, args=(t,)) for t in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * len(tokens)
    conn = db.connect(path)
    rows = conn.execute("SELECT rater_id FROM votes WHERE pair_id = 2 ORDER BY rater_id").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(tokens) + 1))
