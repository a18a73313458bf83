"""Build a JUICE study: match two folders of sampler outputs into pairs and
write pairs, rater tokens and seeded left/right assignments to a new database.

The sampler writes, per item, `<stem>.json` (at least `prompt`,
`prompt_index`, `seed`, and `video`: the mp4 file name relative to the JSON,
default `<stem>.mp4`) next to `<stem>.mp4` (+ optional `<stem>.gif`, which raters are offered
only for pairs where both systems wrote one, so the study stays blind). Items are matched by prompt
text; when a prompt occurs more than once on a side, by prompt_index, then in
seed order. Paths are stored relative to each folder, whose absolute path the
study keeps, and every path is checked to stay inside its folder.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import time
from collections import defaultdict
from pathlib import Path

from emu_jax.juice import db


@dataclasses.dataclass(frozen=True)
class Item:
    """One generated sample: prompt plus video path relative to its folder."""

    prompt: str
    prompt_index: int | None
    seed: int | None
    video: str
    gif: str | None
    source: str  # the JSON file, relative to the folder (for messages)


@dataclasses.dataclass
class StudySummary:
    n_pairs: int
    tokens: list[str]
    unmatched_a: list[str]
    unmatched_b: list[str]
    missing_prompts: list[str]
    skipped: list[str]  # JSON files that are not sample records or point at missing / outside files


def resolve_inside(root: str | os.PathLike, rel: str) -> str | None:
    """Real path of `root/rel` if it is an existing file inside `root`, else None.

    Refuses absolute paths, `..` escapes and symlinks leading outside: the
    check is done on `os.path.realpath` of both sides, after all links resolve.
    """
    if not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    root_real = os.path.realpath(root)
    path = os.path.realpath(os.path.join(root_real, rel))
    if os.path.commonpath([root_real, path]) != root_real or path == root_real:
        return None
    return path if os.path.isfile(path) else None


def scan_folder(folder: str | os.PathLike) -> tuple[list[Item], list[str]]:
    """All sample records under `folder` (recursive) and the JSON files skipped, with why."""
    folder = os.path.realpath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"sample folder {folder!r} does not exist or is not a directory")
    items, skipped = [], []
    for path in sorted(Path(folder).rglob("*.json")):
        rel_json = os.path.relpath(path, folder)
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            skipped.append(f"{rel_json}: unreadable JSON ({e})")
            continue
        if not isinstance(meta, dict) or not isinstance(meta.get("prompt"), str):
            skipped.append(f"{rel_json}: not a sample record (needs a string 'prompt')")
            continue
        name = meta.get("video") if isinstance(meta.get("video"), str) else path.stem + ".mp4"
        # Relative names are relative to the JSON; an absolute one is fine if it lies inside the folder.
        video = os.path.relpath(os.path.normpath(os.path.join(path.parent, name)), folder)
        if resolve_inside(folder, video) is None:
            skipped.append(f"{rel_json}: video {name!r} is missing or outside {folder}")
            continue
        gif = os.path.splitext(video)[0] + ".gif"
        items.append(
            Item(
                prompt=meta["prompt"],
                prompt_index=_int_or_none(meta.get("prompt_index")),
                seed=_int_or_none(meta.get("seed")),
                video=video,
                gif=gif if resolve_inside(folder, gif) else None,
                source=rel_json,
            )
        )
    return items, skipped


def _int_or_none(x) -> int | None:
    return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _order(items: list[Item]) -> list[Item]:
    return sorted(items, key=lambda it: (it.seed if it.seed is not None else -1, it.source))


def match_items(items_a: list[Item], items_b: list[Item]) -> tuple[list[tuple[Item, Item]], list[Item], list[Item]]:
    """Pair a's and b's items with the same prompt; returns (pairs, unmatched_a, unmatched_b).

    A prompt seen once on each side pairs directly (prompt_index may differ if
    the two runs used different prompt files). Repeated prompts pair by
    prompt_index, then in seed order; leftovers are reported as unmatched.
    """
    by_prompt_a, by_prompt_b = defaultdict(list), defaultdict(list)
    for it in items_a:
        by_prompt_a[it.prompt].append(it)
    for it in items_b:
        by_prompt_b[it.prompt].append(it)
    matched, un_a, un_b = [], [], []
    for prompt in sorted(set(by_prompt_a) | set(by_prompt_b)):
        ga, gb = by_prompt_a.get(prompt, []), by_prompt_b.get(prompt, [])
        if len(ga) == 1 and len(gb) == 1:
            matched.append((ga[0], gb[0]))
            continue
        sub_a, sub_b = defaultdict(list), defaultdict(list)
        for it in ga:
            sub_a[it.prompt_index].append(it)
        for it in gb:
            sub_b[it.prompt_index].append(it)
        for idx in sorted(set(sub_a) | set(sub_b), key=lambda i: (i is None, i or 0)):
            sa, sb = _order(sub_a.get(idx, [])), _order(sub_b.get(idx, []))
            matched += list(zip(sa, sb))
            un_a += sa[len(sb) :]
            un_b += sb[len(sa) :]
    return matched, un_a, un_b


def read_prompts(path: str | os.PathLike) -> list[str]:
    """Prompts from a text file, one per line; blank lines are ignored."""
    with open(path, encoding="utf-8") as f:
        prompts = [line.strip() for line in f if line.strip()]
    if not prompts:
        raise ValueError(f"prompts file {os.fspath(path)!r} holds no prompts")
    return prompts


def create_study(
    db_path: str | os.PathLike,
    dir_a: str | os.PathLike,
    dir_b: str | os.PathLike,
    *,
    raters_per_pair: int = 5,
    n_raters: int | None = None,
    names: tuple[str, str] = ("A", "B"),
    prompts: list[str] | None = None,
    seed: int = 0,
    allow_tie: bool = True,
) -> StudySummary:
    """Write a new study database; returns the rater tokens and what did not match.

    Every pair goes to `raters_per_pair` distinct raters out of `n_raters`
    (default: exactly `raters_per_pair`, so every rater sees every pair),
    round-robin. Each rater gets the pairs in their own shuffled order and a
    seeded coin per (pair, rater) decides whether system a is shown left.
    """
    n_raters = raters_per_pair if n_raters is None else n_raters
    if raters_per_pair < 1:
        raise ValueError(f"raters_per_pair must be >= 1, got {raters_per_pair}")
    if n_raters < raters_per_pair:
        raise ValueError(f"n_raters ({n_raters}) must be >= raters_per_pair ({raters_per_pair})")
    if len(names) != 2 or not all(n.strip() for n in names) or names[0] == names[1]:
        raise ValueError(f"names must be two distinct non-empty system names, got {names!r}")
    if os.path.exists(db_path):
        raise FileExistsError(f"study database {os.fspath(db_path)!r} already exists; choose a new file")
    root_a, root_b = os.path.realpath(dir_a), os.path.realpath(dir_b)
    items_a, skipped_a = scan_folder(root_a)
    items_b, skipped_b = scan_folder(root_b)
    missing: list[str] = []
    if prompts is not None:
        wanted = set(prompts)
        items_a = [it for it in items_a if it.prompt in wanted]
        items_b = [it for it in items_b if it.prompt in wanted]
    matched, un_a, un_b = match_items(items_a, items_b)
    if prompts is not None:
        have = {a.prompt for a, _ in matched}
        missing = [p for p in dict.fromkeys(prompts) if p not in have]
    if not matched:
        raise ValueError(
            f"no pairs: no prompt occurs in both {root_a} ({len(items_a)} samples) "
            f"and {root_b} ({len(items_b)} samples)"
        )
    rng = random.Random(seed)
    tokens = [secrets.token_urlsafe(16) for _ in range(n_raters)]
    conn = db.connect(db_path, must_exist=False)
    try:
        db.init_schema(conn)
        with db.transaction(conn):
            conn.execute(
                "INSERT INTO study (id, name_a, name_b, dir_a, dir_b, allow_tie, raters_per_pair, seed, secret, "
                "created_at)"
                " VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    names[0],
                    names[1],
                    root_a,
                    root_b,
                    int(allow_tie),
                    raters_per_pair,
                    seed,
                    secrets.token_hex(16),
                    time.time(),
                ),
            )
            for i, tok in enumerate(tokens):
                conn.execute("INSERT INTO raters (id, token, label) VALUES (?, ?, ?)", (i + 1, tok, f"rater{i + 1}"))
            per_rater: dict[int, list[int]] = defaultdict(list)
            for pid, (a, b) in enumerate(matched, start=1):
                conn.execute(
                    "INSERT INTO pairs (id, prompt, prompt_index, video_a, video_b, gif_a, gif_b)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (pid, a.prompt, a.prompt_index, a.video, b.video, a.gif, b.gif),
                )
                for j in range(raters_per_pair):
                    per_rater[((pid - 1) * raters_per_pair + j) % n_raters + 1].append(pid)
            for rid, pids in sorted(per_rater.items()):
                rng.shuffle(pids)
                for pos, pid in enumerate(pids):
                    conn.execute(
                        "INSERT INTO assignments (rater_id, pair_id, position, a_on_left) VALUES (?, ?, ?, ?)",
                        (rid, pid, pos, int(rng.random() < 0.5)),
                    )
    finally:
        conn.close()
    return StudySummary(
        n_pairs=len(matched),
        tokens=tokens,
        unmatched_a=[it.source for it in un_a],
        unmatched_b=[it.source for it in un_b],
        missing_prompts=missing,
        skipped=[f"a: {s}" for s in skipped_a] + [f"b: {s}" for s in skipped_b],
    )


WILDCARD_HOSTS = ("0.0.0.0", "::", "", "[::]")


def base_url(host: str = "127.0.0.1", port: int = 8000, public_url: str | None = None) -> tuple[str, str | None]:
    """(URL raters open, a note or None): `public_url` if given; a listen-on-all host (0.0.0.0) is no
    address a browser can open, so links then use this machine's name, with a note."""
    if public_url:
        if not public_url.startswith(("http://", "https://")) or "/r/" in public_url:
            raise ValueError(f"--public-url {public_url!r} must be the server's base URL, e.g. http://HOST:PORT")
        return public_url.rstrip("/"), None
    if host in WILDCARD_HOSTS:
        name = _lan_address()
        return (
            f"http://{name}:{port}",
            f"links use this machine's address {name} ({host} listens on every "
            "interface); pass --public-url http://ADDRESS:PORT if raters reach it "
            "by another address",
        )
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}", None


def _lan_address() -> str:
    """This machine's address on its default route (a UDP connect sends nothing), else its host name."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            return s.getsockname()[0]
        except OSError:
            return socket.gethostname()


def rater_links(
    tokens: list[str], host: str = "127.0.0.1", port: int = 8000, public_url: str | None = None
) -> list[str]:
    base, _ = base_url(host, port, public_url)
    return [f"{base}/r/{tok}" for tok in tokens]
