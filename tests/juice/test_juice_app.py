"""The JUICE rating app through Flask's test client: voting, validation, security, concurrency."""

import os
import sqlite3
import threading

import pytest

from emu_jax.juice import db
from emu_jax.juice.app import create_app, form_nonce
from emu_jax.juice.study import create_study
from juice_helpers import PROMPTS, form_fields, write_samples

GOOD = {
    "quality": "left",
    "quality_reasons": ["pixel_sharpness", "frame_consistency"],
    "faithfulness": "right",
    "faithfulness_reasons": ["temporal_alignment"],
}


def _n_votes(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def study(make_study):
    path, summary = make_study(raters_per_pair=3)
    return path, summary.tokens, create_app(path).test_client()


def _vote(client, token, picks=GOOD, overrides=None):
    page = client.get(f"/r/{token}")
    assert page.status_code == 200
    data = {**form_fields(page.text), **picks, **(overrides or {})}
    return client.post(f"/r/{token}/vote", data=data), int(form_fields(page.text)["pair_id"])


def test_unknown_token_sees_nothing(study):
    path, tokens, client = study
    for url in ["/r/not-a-token", "/r/" + tokens[0][:-1], "/r/" + "x" * 500, "/", "/r/not-a-token/media/1/left.mp4"]:
        r = client.get(url)
        assert r.status_code == 404, url
        assert not any(w in r.text for w in ("red ball", "alert", "waves", "robot")), url
    r = client.post("/r/not-a-token/vote", data=GOOD)
    assert r.status_code == 404 and _n_votes(path) == 0


def test_vote_stores_system_identity_and_resumes(study):
    path, tokens, client = study
    r, pid = _vote(client, tokens[0])
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/r/{tokens[0]}")
    conn = db.connect(path)
    a_on_left = db.assignment(conn, 1, pid)["a_on_left"]
    v = conn.execute("SELECT * FROM votes").fetchone()
    # Left was picked for quality, right for faithfulness: identities follow the rater's side layout.
    assert v["quality_winner"] == ("a" if a_on_left else "b")
    assert v["faithfulness_winner"] == ("b" if a_on_left else "a")
    assert v["quality_reasons"] == "pixel_sharpness,frame_consistency" and v["quality_choice"] == "left"
    # A fresh client with the same link resumes at the next unjudged pair.
    page = create_app(path).test_client().get(f"/r/{tokens[0]}")
    assert "Pair 2 of 4 (1 done)" in page.text and int(form_fields(page.text)["pair_id"]) != pid
    for _ in range(3):
        assert _vote(client, tokens[0])[0].status_code == 303
    done = client.get(f"/r/{tokens[0]}")
    assert done.status_code == 200 and "all 4 pairs" in done.text and "vote-form" not in done.text
    assert db.progress(conn, 1) == (4, 4) and db.progress(conn, 2) == (0, 4)


def test_prompt_text_is_escaped(study):
    _, tokens, client = study
    seen = []
    for _ in range(4):
        html = client.get(f"/r/{tokens[1]}").text
        seen.append(html)
        assert "<script>alert" not in html
        client.post(f"/r/{tokens[1]}/vote", data={**form_fields(html), **GOOD})
    assert any("a cat &lt;script&gt;alert(1)&lt;/script&gt; &amp; dog" in h for h in seen)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"quality_reasons": []}, "at least one reason"),
        ({"faithfulness_reasons": []}, "at least one reason"),
        ({"quality_reasons": ["pixel_sharpness", "bogus"]}, "reasons must be"),
        ({"quality_reasons": ["spatial_alignment"]}, "reasons must be"),  # a faithfulness reason under quality
        ({"faithfulness_reasons": ["temporal_alignment", "temporal_alignment"]}, "reasons must be"),
        ({"quality": "middle"}, "pick one of"),
        ({"faithfulness": ""}, "pick one of"),
        ({"pair_id": "1; DROP TABLE votes"}, "integer"),
        ({"pair_id": "999"}, "not one of your pairs"),
        ({"nonce": "0" * 32}, "nonce"),
        ({"token": "someone-else"}, "rater token"),
    ],
)
def test_malformed_posts_are_refused(study, bad, message):
    path, tokens, client = study
    r, _ = _vote(client, tokens[0], overrides=bad)
    assert r.status_code == 400 and message in r.text
    assert _n_votes(path) == 0
    assert "Pair 1 of 4" in client.get(f"/r/{tokens[0]}").text


def test_post_without_fields_and_double_submit(study):
    path, tokens, client = study
    r = client.post(f"/r/{tokens[0]}/vote", data={})
    assert r.status_code == 400 and _n_votes(path) == 0
    page = client.get(f"/r/{tokens[0]}").text
    data = {**form_fields(page), **GOOD}
    assert client.post(f"/r/{tokens[0]}/vote", data=data).status_code == 303
    r = client.post(f"/r/{tokens[0]}/vote", data={**data, "quality": "right"})
    assert r.status_code == 409 and _n_votes(path) == 1
    # Another rater's nonce / pair does not work with my token.
    other = form_fields(client.get(f"/r/{tokens[1]}").text)
    r = client.post(f"/r/{tokens[0]}/vote", data={**other, **GOOD, "token": tokens[0]})
    assert r.status_code in (400, 409) and _n_votes(path) == 1


def test_tie_refused_when_not_allowed(make_study):
    path, s = make_study(allow_tie=False)
    client = create_app(path).test_client()
    page = client.get(f"/r/{s.tokens[0]}").text
    assert 'value="tie"' not in page
    r = client.post(f"/r/{s.tokens[0]}/vote", data={**form_fields(page), **GOOD, "quality": "tie"})
    assert r.status_code == 400 and "left, right" in r.text and _n_votes(path) == 0


def test_media_served_by_pair_and_side(study, sample_dirs):
    path, tokens, client = study
    conn = db.connect(path)
    item = db.next_assignment(conn, 1)
    pid, a_on_left = item["pair_id"], item["a_on_left"]
    left = client.get(f"/r/{tokens[0]}/media/{pid}/left.mp4")
    assert left.status_code == 200 and left.mimetype == "video/mp4"
    system = "a" if a_on_left else "b"
    with open(os.path.join(sample_dirs[0 if a_on_left else 1], item[f"video_{system}"]), "rb") as f:
        assert left.data == f.read()
    ranged = client.get(f"/r/{tokens[0]}/media/{pid}/right.mp4", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and len(ranged.data) == 10
    # Only system b wrote GIFs: a fallback for one side only would tell the systems apart, so neither
    # side offers or serves one (tests/juice/test_juice_blind.py covers the case where both have GIFs).
    for side in ("left", "right"):
        assert client.get(f"/r/{tokens[0]}/media/{pid}/{side}.gif").status_code == 404
    page = client.get(f"/r/{tokens[0]}").text
    assert "data-gif=" not in page and ".gif" not in page


@pytest.mark.parametrize(
    "url",
    [
        "/r/{t}/media/{p}/../../../../etc/passwd",
        "/r/{t}/media/{p}/..%2f..%2f..%2fetc%2fpasswd",
        "/r/{t}/media/%2e%2e%2f%2e%2e/left.mp4",
        "/r/{t}/media/{p}/%2e%2e%2fleft.mp4",
        "/r/{t}/media/{p}/up.mp4",
        "/r/{t}/media/{p}/left.json",
        "/r/{t}/media/{p}/left.mp4%00.json",
        "/r/{t}/media/-1/left.mp4",
        "/r/{t}/media/999/left.mp4",
        "/r/{t}/media//etc/passwd/left.mp4",
        "//etc/passwd",
        "/static/../app.py",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
        "/static//etc/passwd",
        "/r/../../etc/passwd",
    ],
)
def test_traversal_urls_refused(study, url):
    path, tokens, client = study
    pid = db.next_assignment(db.connect(path), 1)["pair_id"]
    r = client.get(url.format(t=tokens[0], p=pid), follow_redirects=True)
    assert r.status_code in (400, 403, 404), url
    assert b"root:" not in r.data and b"create_app" not in r.data


def test_media_outside_folder_refused_even_if_db_points_there(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_samples(str(a), PROMPTS[:1], (1, 1, 1))
    write_samples(str(b), PROMPTS[:1], (2, 2, 2))
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"root:secret")
    path = str(tmp_path / "s.db")
    tok = create_study(path, str(a), str(b), raters_per_pair=1).tokens[0]
    client = create_app(path).test_client()
    os.symlink(secret, a / "link.mp4")
    conn = db.connect(path)
    side = "left" if db.assignment(conn, 1, 1)["a_on_left"] else "right"
    assert client.get(f"/r/{tok}/media/1/{side}.mp4").status_code == 200
    for rel in ["../secret.mp4", str(secret), "link.mp4", "sample_000.mp4/../../secret.mp4"]:
        conn.execute("UPDATE pairs SET video_a = ?", (rel,))
        r = client.get(f"/r/{tok}/media/1/{side}.mp4")
        assert r.status_code == 404 and b"secret" not in r.data, rel


def test_pairs_of_other_raters_are_not_served(make_study):
    path, s = make_study(raters_per_pair=1, n_raters=4)
    client = create_app(path).test_client()
    conn = db.connect(path)
    mine = {r[0] for r in conn.execute("SELECT pair_id FROM assignments WHERE rater_id = 1")}
    other = next(p for p in range(1, 5) if p not in mine)
    assert client.get(f"/r/{s.tokens[0]}/media/{other}/left.mp4").status_code == 404


def test_security_headers(study):
    _, tokens, client = study
    r = client.get(f"/r/{tokens[0]}")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["Referrer-Policy"] == "no-referrer" and r.headers["Cache-Control"] == "no-store"


def test_concurrent_raters_on_the_same_pair(make_study):
    path, s = make_study(raters_per_pair=5)
    app = create_app(path)
    conn = db.connect(path)
    secret = db.get_study(conn)["secret"]
    # Every rater sees every pair: all five vote on pair 1 at the same moment.
    forms = {
        tok: {"token": tok, "pair_id": "1", "nonce": form_nonce(secret, i + 1, 1)} for i, tok in enumerate(s.tokens)
    }
    barrier = threading.Barrier(len(s.tokens))
    codes = []

    def rate(tok):
        client = app.test_client()
        barrier.wait()
        codes.append(client.post(f"/r/{tok}/vote", data={**forms[tok], **GOOD}).status_code)

    threads = [threading.Thread(target=rate, args=(tok,)) for tok in s.tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [303] * 5
    rows = conn.execute("SELECT rater_id FROM votes WHERE pair_id = 1 ORDER BY rater_id").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
