"""SQLite storage for a JUICE study: schema, connection settings and queries.

One database file holds one study. WAL journaling plus a busy timeout let
several raters vote at once; every vote is one `BEGIN IMMEDIATE` transaction,
so a vote is either fully on disk or absent, even if the server is killed.
Votes store the system identity (`a` / `b` / `tie`) next to what the rater
clicked (`left` / `right` / `tie`), so reports never depend on screen sides.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from typing import Iterator

from emu_jax.juice import QUESTIONS

SCHEMA = """
CREATE TABLE IF NOT EXISTS study (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  name_a TEXT NOT NULL, name_b TEXT NOT NULL,
  dir_a TEXT NOT NULL, dir_b TEXT NOT NULL,
  allow_tie INTEGER NOT NULL, raters_per_pair INTEGER NOT NULL,
  seed INTEGER NOT NULL, secret TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pairs (
  id INTEGER PRIMARY KEY,
  prompt TEXT NOT NULL, prompt_index INTEGER,
  video_a TEXT NOT NULL, video_b TEXT NOT NULL,
  gif_a TEXT, gif_b TEXT
);
CREATE TABLE IF NOT EXISTS raters (
  id INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, label TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
  rater_id INTEGER NOT NULL REFERENCES raters(id),
  pair_id INTEGER NOT NULL REFERENCES pairs(id),
  position INTEGER NOT NULL,
  a_on_left INTEGER NOT NULL CHECK (a_on_left IN (0, 1)),
  PRIMARY KEY (rater_id, pair_id), UNIQUE (rater_id, position)
);
CREATE TABLE IF NOT EXISTS votes (
  rater_id INTEGER NOT NULL, pair_id INTEGER NOT NULL,
  quality_choice TEXT NOT NULL CHECK (quality_choice IN ('left', 'right', 'tie')),
  quality_winner TEXT NOT NULL CHECK (quality_winner IN ('a', 'b', 'tie')),
  quality_reasons TEXT NOT NULL CHECK (quality_reasons != ''),
  faithfulness_choice TEXT NOT NULL CHECK (faithfulness_choice IN ('left', 'right', 'tie')),
  faithfulness_winner TEXT NOT NULL CHECK (faithfulness_winner IN ('a', 'b', 'tie')),
  faithfulness_reasons TEXT NOT NULL CHECK (faithfulness_reasons != ''),
  a_on_left INTEGER NOT NULL,
  created_at REAL NOT NULL,
  PRIMARY KEY (rater_id, pair_id),
  FOREIGN KEY (rater_id, pair_id) REFERENCES assignments(rater_id, pair_id)
);
"""

BUSY_TIMEOUT_MS = 10_000


def connect(path: str | os.PathLike, *, must_exist: bool = True) -> sqlite3.Connection:
    """Open the study database with WAL, a busy timeout and foreign keys on.

    Autocommit mode (`isolation_level=None`): writers open their own
    `BEGIN IMMEDIATE` through `transaction`, so no implicit transaction lingers.
    """
    path = os.fspath(path)
    if must_exist and not os.path.isfile(path):
        raise FileNotFoundError(f"study database {path!r} does not exist; create it with `emu-video juice create`")
    if not must_exist:
        # Votes and rater tokens are private: create the file 0600 (SQLite gives its WAL the same mode).
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as e:
        conn.close()
        raise ValueError(f"{path!r} is not a JUICE study database ({e})") from None
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    # FULL syncs the WAL on every commit: a vote acknowledged is a vote kept.
    conn.execute("PRAGMA synchronous=FULL")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction; takes the write lock up front to avoid upgrade deadlocks."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def init_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def get_study(conn: sqlite3.Connection) -> sqlite3.Row:
    try:
        row = conn.execute("SELECT * FROM study WHERE id = 1").fetchone()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"not a JUICE study database ({e}); create one with `emu-video juice create`") from None
    if row is None:
        raise ValueError("database holds no JUICE study (table `study` is empty)")
    return row


def rater_by_token(conn: sqlite3.Connection, token: str) -> sqlite3.Row | None:
    return conn.execute("SELECT * FROM raters WHERE token = ?", (token,)).fetchone()


def raters(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM raters ORDER BY id").fetchall()


def pairs(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM pairs ORDER BY id").fetchall()


def progress(conn: sqlite3.Connection, rater_id: int) -> tuple[int, int]:
    """(pairs judged, pairs assigned) for one rater."""
    total = conn.execute("SELECT COUNT(*) FROM assignments WHERE rater_id = ?", (rater_id,)).fetchone()[0]
    done = conn.execute("SELECT COUNT(*) FROM votes WHERE rater_id = ?", (rater_id,)).fetchone()[0]
    return done, total


_ASSIGNMENT_SQL = """
SELECT a.rater_id, a.pair_id, a.position, a.a_on_left, p.prompt, p.prompt_index,
       p.video_a, p.video_b, p.gif_a, p.gif_b
FROM assignments a JOIN pairs p ON p.id = a.pair_id
"""


def next_assignment(conn: sqlite3.Connection, rater_id: int) -> sqlite3.Row | None:
    """The rater's first unjudged pair in their (shuffled) order; None when done."""
    return conn.execute(
        _ASSIGNMENT_SQL
        + """WHERE a.rater_id = ? AND NOT EXISTS (
          SELECT 1 FROM votes v WHERE v.rater_id = a.rater_id AND v.pair_id = a.pair_id)
        ORDER BY a.position LIMIT 1""",
        (rater_id,),
    ).fetchone()


MAX_ID = 2**63 - 1  # SQLite's INTEGER range: a larger id cannot exist (and would overflow the query)


def assignment(conn: sqlite3.Connection, rater_id: int, pair_id: int) -> sqlite3.Row | None:
    if not (0 <= rater_id <= MAX_ID and 0 <= pair_id <= MAX_ID):
        return None
    return conn.execute(_ASSIGNMENT_SQL + "WHERE a.rater_id = ? AND a.pair_id = ?", (rater_id, pair_id)).fetchone()


def has_vote(conn: sqlite3.Connection, rater_id: int, pair_id: int) -> bool:
    return (
        conn.execute("SELECT 1 FROM votes WHERE rater_id = ? AND pair_id = ?", (rater_id, pair_id)).fetchone()
        is not None
    )


def insert_vote(
    conn: sqlite3.Connection, rater_id: int, pair_id: int, a_on_left: bool, picks: dict[str, tuple[str, str, list[str]]]
) -> bool:
    """Store one rater's judgement of one pair in one transaction.

    `picks[question] = (choice, winner, reasons)` with choice in left/right/tie,
    winner in a/b/tie. Returns False (and writes nothing) if this rater already
    judged this pair, so a double submit cannot count twice.
    """
    cols = ["rater_id", "pair_id", "a_on_left", "created_at"]
    vals: list = [rater_id, pair_id, int(a_on_left), time.time()]
    for q in QUESTIONS:
        choice, winner, reasons = picks[q]
        cols += [f"{q}_choice", f"{q}_winner", f"{q}_reasons"]
        vals += [choice, winner, ",".join(reasons)]
    sql = f"INSERT OR IGNORE INTO votes ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
    with transaction(conn):
        cur = conn.execute(sql, vals)
    return cur.rowcount == 1


def all_votes(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every vote joined with its pair and rater, in a stable order."""
    return conn.execute(
        """SELECT v.*, p.prompt, p.prompt_index, r.label AS rater
           FROM votes v JOIN pairs p ON p.id = v.pair_id JOIN raters r ON r.id = v.rater_id
           ORDER BY v.pair_id, v.rater_id"""
    ).fetchall()
