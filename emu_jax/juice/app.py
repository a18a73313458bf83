"""Flask app for JUICE raters: one page per rater link, one vote per pair.

A rater is identified only by the token in their link; unknown tokens get a
bare 404. The page shows the prompt and the two videos (sides randomised per
rater at create time), and posts both picks with their reasons; the server
re-validates everything (400 with a message, nothing written) and answers a
good post with a redirect back to the page (POST-redirect-GET), which then
shows the next unjudged pair, so closing the tab and coming back resumes.
Videos are served only by (pair id, side) for pairs assigned to that rater,
after resolving the real path inside the study's folders, and carry no file
name, modification time, path-derived ETag or Last-Modified: two systems'
files differ to the rater only in their bytes (the study stays blind).
The GIF fallback (for browsers without H.264) is offered and served only for
a pair whose two systems both wrote a GIF, so the page's markup and the media
routes answer the same for both sides whichever system wrote GIFs.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import sqlite3

from flask import Flask, abort, g, redirect, render_template, request, send_file, url_for

from emu_jax.juice import QUESTION_TITLES, QUESTIONS, REASONS, db
from emu_jax.juice.study import resolve_inside

# Keys that pick a winner / toggle a reason on the page (documented there too).
WINNER_KEYS = {
    "quality": {"left": "1", "right": "2", "tie": "3"},
    "faithfulness": {"left": "q", "right": "w", "tie": "e"},
}
REASON_KEYS = {"quality": "asdfg", "faithfulness": "zx"}
_MIMETYPES = {"mp4": "video/mp4", "gif": "image/gif"}


class BadVote(ValueError):
    """A malformed or unacceptable vote post; the message is shown to the rater."""


def create_app(db_path: str | os.PathLike) -> Flask:
    """App serving the study in `db_path`; one SQLite connection per request."""
    db_path = os.fspath(db_path)
    conn = db.connect(db_path)  # fail early on a missing or empty database
    try:
        db.get_study(conn)
    finally:
        conn.close()
    app = Flask(__name__)
    app.config.update(JUICE_DB=db_path, MAX_CONTENT_LENGTH=64 * 1024)

    def get_conn() -> sqlite3.Connection:
        if "juice_db" not in g:
            g.juice_db = db.connect(app.config["JUICE_DB"])
        return g.juice_db

    @app.teardown_appcontext
    def _close(_exc):
        conn = g.pop("juice_db", None)
        if conn is not None:
            conn.close()

    @app.after_request
    def _headers(resp):
        # The token is in the URL: keep it out of caches and Referer headers; no inline script.
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        if request.endpoint != "media":
            resp.headers["Cache-Control"] = "no-store"
        return resp

    def rater_or_404(token: str) -> sqlite3.Row:
        rater = db.rater_by_token(get_conn(), token) if len(token) <= 128 else None
        if rater is None:
            abort(404)
        return rater

    @app.get("/")
    def index():
        return render_template(
            "message.html", title="JUICE study", message="Open the personal link you were given to start rating."
        ), 404

    @app.get("/r/<token>")
    def rate(token: str):
        rater = rater_or_404(token)
        conn = get_conn()
        study = db.get_study(conn)
        done, total = db.progress(conn, rater["id"])
        item = db.next_assignment(conn, rater["id"])
        if item is None:
            return render_template("done.html", done=done, total=total)
        choices = ("left", "right", "tie") if study["allow_tie"] else ("left", "right")
        media = {
            side: {
                ext: url_for("media", token=token, pair_id=item["pair_id"], side=side, ext=ext)
                for ext in ("mp4", "gif")
            }
            for side in ("left", "right")
        }
        return render_template(
            "rate.html",
            token=token,
            item=item,
            done=done,
            total=total,
            media=media,
            has_gif=_pair_gifs(study, item) is not None,
            nonce=form_nonce(study["secret"], rater["id"], item["pair_id"]),
            choices=choices,
            questions=QUESTIONS,
            titles=QUESTION_TITLES,
            reasons=REASONS,
            winner_keys=WINNER_KEYS,
            reason_keys=REASON_KEYS,
        )

    @app.post("/r/<token>/vote")
    def vote(token: str):
        rater = rater_or_404(token)
        conn = get_conn()
        study = db.get_study(conn)
        try:
            item, picks = _parse_vote(conn, study, rater, token, request.form)
        except BadVote as e:
            return render_template(
                "message.html", title="Vote not accepted", message=str(e), back=url_for("rate", token=token)
            ), 400
        if not db.insert_vote(conn, rater["id"], item["pair_id"], bool(item["a_on_left"]), picks):
            return render_template(
                "message.html",
                title="Already judged",
                message="This pair was already judged; your first answer was kept.",
                back=url_for("rate", token=token),
            ), 409
        return redirect(url_for("rate", token=token), code=303)

    @app.get("/r/<token>/media/<int:pair_id>/<side>.<ext>")
    def media(token: str, pair_id: int, side: str, ext: str):
        rater = rater_or_404(token)
        if side not in ("left", "right") or ext not in _MIMETYPES:
            abort(404)
        conn = get_conn()
        item = db.assignment(conn, rater["id"], pair_id)
        if item is None:
            abort(404)
        study = db.get_study(conn)
        system = _system_on(side, bool(item["a_on_left"]))
        if ext == "mp4":
            path = resolve_inside(study[f"dir_{system}"], item[f"video_{system}"])
        else:
            # Both sides or neither: a GIF for one side only would tell which system is there.
            gifs = _pair_gifs(study, item)
            path = gifs[system] if gifs is not None else None
        if path is None:
            abort(404)
        return _blind_file(path, _MIMETYPES[ext])

    return app


def _blind_file(path: str, mimetype: str):
    """The file's bytes with range support but no name, mtime or path in any header (no validators)."""
    with open(path, "rb") as f:
        data = f.read()
    resp = send_file(
        io.BytesIO(data), mimetype=mimetype, conditional=True, etag=False, last_modified=None, max_age=3600
    )
    resp.headers["Cache-Control"] = "private, max-age=3600"  # the token is in the URL: no shared caches
    return resp


def form_nonce(secret: str, rater_id: int, pair_id: int) -> str:
    """Per-form nonce: only a page rendered for this rater and pair can post its vote."""
    return hmac.new(secret.encode(), f"{rater_id}:{pair_id}".encode(), hashlib.sha256).hexdigest()[:32]


def _system_on(side: str, a_on_left: bool) -> str:
    """Which system ('a' / 'b') the rater saw on `side` ('left' / 'right')."""
    return "a" if (side == "left") == a_on_left else "b"


def _pair_gifs(study: sqlite3.Row, item: sqlite3.Row) -> dict[str, str] | None:
    """{'a': path, 'b': path} of the pair's GIFs when both systems have one (still inside their
    folders), else None: the fallback is offered for both sides or for neither, never for one."""
    paths = {}
    for system in ("a", "b"):
        rel = item[f"gif_{system}"]
        path = resolve_inside(study[f"dir_{system}"], rel) if rel else None
        if path is None:
            return None
        paths[system] = path
    return paths


def _parse_vote(conn, study, rater, token, form):
    """Validate a posted vote; returns (assignment row, picks) or raises BadVote."""
    if form.get("token") != token:
        raise BadVote("The form does not carry your rater token; reload the page and vote again.")
    try:
        pair_id = int(form.get("pair_id", ""))
    except ValueError:
        raise BadVote(f"pair_id must be an integer, got {form.get('pair_id')!r}.") from None
    item = db.assignment(conn, rater["id"], pair_id)
    if item is None:
        raise BadVote(f"Pair {pair_id} is not one of your pairs.")
    if not hmac.compare_digest(form.get("nonce", ""), form_nonce(study["secret"], rater["id"], pair_id)):
        raise BadVote("The form nonce does not match this pair; reload the page and vote again.")
    allowed = ("left", "right", "tie") if study["allow_tie"] else ("left", "right")
    picks = {}
    for q in QUESTIONS:
        choice = form.get(q, "")
        if choice not in allowed:
            raise BadVote(f"{q}: pick one of {', '.join(allowed)} (got {choice!r}).")
        reasons = form.getlist(f"{q}_reasons")
        valid = [key for key, _ in REASONS[q]]
        if not reasons:
            raise BadVote(f"{q}: tick at least one reason for your pick.")
        bad = [r for r in reasons if r not in valid]
        if bad or len(set(reasons)) != len(reasons):
            raise BadVote(f"{q}: reasons must be distinct values from {', '.join(valid)} (got {reasons!r}).")
        winner = "tie" if choice == "tie" else _system_on(choice, bool(item["a_on_left"]))
        picks[q] = (choice, winner, reasons)
    return item, picks
