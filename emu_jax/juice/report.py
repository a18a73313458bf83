"""JUICE report: win rates, reason counts and agreement from a study database,
written as text, JSON, CSV (votes and per-pair results) and a PNG bar chart.

The chart is drawn with PIL so the evaluation tool needs no plotting library.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import Counter, defaultdict

from PIL import Image, ImageDraw, ImageFont

from emu_jax.juice import QUESTIONS, REASONS, db
from emu_jax.juice.stats import question_stats


def compute_report(conn) -> dict:
    """All report numbers for the study behind `conn` (see `stats.question_stats`)."""
    study = db.get_study(conn)
    votes = db.all_votes(conn)
    pairs = db.pairs(conn)
    rep = {
        "name_a": study["name_a"],
        "name_b": study["name_b"],
        "dir_a": study["dir_a"],
        "dir_b": study["dir_b"],
        "raters_per_pair": study["raters_per_pair"],
        "allow_tie": bool(study["allow_tie"]),
        "n_pairs_total": len(pairs),
        "n_votes": len(votes),
        "n_raters": len(db.raters(conn)),
        "questions": {},
    }
    for q in QUESTIONS:
        by_pair = defaultdict(list)
        reasons = {key: Counter() for key, _ in REASONS[q]}
        for v in votes:
            by_pair[v["pair_id"]].append(v[f"{q}_winner"])
            for r in v[f"{q}_reasons"].split(","):
                reasons[r][v[f"{q}_winner"]] += 1
        s = question_stats(by_pair)
        s["reasons"] = {
            key: {"total": sum(c.values()), "a": c["a"], "b": c["b"], "tie": c["tie"]} for key, c in reasons.items()
        }
        rep["questions"][q] = s
    return rep


def pair_rows(conn, rep: dict) -> list[dict]:
    """One row per pair: prompt, vote tallies and majority outcome per question."""
    votes = db.all_votes(conn)
    rows = []
    for p in db.pairs(conn):
        mine = [v for v in votes if v["pair_id"] == p["id"]]
        row = {
            "pair_id": p["id"],
            "prompt": p["prompt"],
            "prompt_index": p["prompt_index"],
            "video_a": p["video_a"],
            "video_b": p["video_b"],
            "n_votes": len(mine),
        }
        for q in QUESTIONS:
            c = Counter(v[f"{q}_winner"] for v in mine)
            row.update(
                {
                    f"{q}_a": c["a"],
                    f"{q}_b": c["b"],
                    f"{q}_tie": c["tie"],
                    f"{q}_outcome": rep["questions"][q]["per_pair"].get(p["id"], "unjudged"),
                }
            )
        rows.append(row)
    return rows


VOTE_COLUMNS = (
    ["pair_id", "rater", "prompt", "a_on_left"]
    + [f"{q}_{f}" for q in QUESTIONS for f in ("choice", "winner", "reasons")]
    + ["created_at"]
)


def vote_rows(conn) -> list[dict]:
    """Every vote; winners are system ids (a / b / tie), choices the side clicked."""
    return [{c: v[c] for c in VOTE_COLUMNS} for v in db.all_votes(conn)]


def _json_safe(x):
    """NaN -> None so report.json is strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe; other values pass."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _write_csv(path: str, rows: list[dict], fields: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f}%"


def format_report(rep: dict) -> str:
    """Human-readable summary (what `emu-video juice report` prints)."""
    a, b = rep["name_a"], rep["name_b"]
    lines = [
        f"JUICE study: {a} (a) vs {b} (b)",
        f"pairs: {rep['n_pairs_total']}, raters: {rep['n_raters']}, votes: {rep['n_votes']}, "
        f"majority of {rep['raters_per_pair']} raters per pair, "
        f"ties {'allowed' if rep['allow_tie'] else 'not allowed'}",
    ]
    for q, s in rep["questions"].items():
        o, ag = s["outcomes"], s["agreement"]
        lines += ["", f"[{q}] judged pairs: {s['n_pairs']}"]
        for key, name in (("win_a", a), ("win_b", b), ("tie", "tie / no majority")):
            r = s[key]
            lines.append(
                f"  {name:<20s} {r['count']:4d}  {_pct(r['rate']):>6s}  "
                f"95% CI [{_pct(r['ci95'][0])}, {_pct(r['ci95'][1])}]"
            )
        p = s["preference_a_decided"]
        lines.append(
            f"  {a} preferred among decided pairs: {_pct(p['rate'])} of {p['n']} "
            f"(95% CI [{_pct(p['ci95'][0])}, {_pct(p['ci95'][1])}])"
        )
        lines.append(f"  outcomes: a={o['a']} b={o['b']} tie-majority={o['tie']} no-majority={o['no_majority']}")
        k = s["fleiss_kappa"]
        lines.append(
            f"  Fleiss' kappa (a/b/tie, {s['kappa_pairs']} pairs x {s['kappa_raters']} raters): "
            + ("n/a" if math.isnan(k) else f"{k:.3f}")
        )
        lines.append(
            f"  agreement over {ag['pairs_with_2plus_votes']} pairs: complete {_pct(ag['complete'])}, "
            f"split {_pct(ag['split'])}"
        )
        lines.append("  reasons (total: for a / b / tie):")
        for key, label in REASONS[q]:
            r = s["reasons"][key]
            lines.append(f"    {label:<32s} {r['total']:4d}: {r['a']} / {r['b']} / {r['tie']}")
    return "\n".join(lines)


def draw_chart(rep: dict, path: str) -> None:
    """Grouped bars (a wins / tie / b wins, % of judged pairs) with 95% CI whiskers."""
    w, h = 960, 540
    left, right, top, bottom = 80, 30, 70, 110
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    font, small = ImageFont.load_default(size=18), ImageFont.load_default(size=14)
    d.text(
        (left, 20),
        f"JUICE: {rep['name_a']} vs {rep['name_b']} (majority of {rep['raters_per_pair']})",
        fill="black",
        font=font,
    )
    plot_h = h - top - bottom

    def y_of(frac: float) -> float:
        return top + plot_h * (1 - frac)

    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        d.line([(left, y), (w - right, y)], fill="#dddddd" if tick else "black")
        d.text((left - 10, y), f"{int(tick * 100)}%", fill="black", font=small, anchor="rm")
    series = (
        ("win_a", rep["name_a"], "#1f77b4"),
        ("tie", "tie / no majority", "#aaaaaa"),
        ("win_b", rep["name_b"], "#ff7f0e"),
    )
    group_w = (w - left - right) / len(rep["questions"])
    bar_w = group_w / (len(series) + 1.5)
    for g, (q, s) in enumerate(rep["questions"].items()):
        x0 = left + g * group_w + bar_w * 0.75
        for i, (key, _, color) in enumerate(series):
            r = s[key]
            rate = 0.0 if math.isnan(r["rate"]) else r["rate"]
            bx = x0 + i * bar_w
            d.rectangle([bx + 4, y_of(rate), bx + bar_w - 4, y_of(0)], fill=color)
            cx = bx + bar_w / 2
            if not math.isnan(r["ci95"][0]):
                lo, hi = y_of(r["ci95"][0]), y_of(r["ci95"][1])
                d.line([(cx, lo), (cx, hi)], fill="black", width=2)
                d.line([(cx - 8, lo), (cx + 8, lo)], fill="black", width=2)
                d.line([(cx - 8, hi), (cx + 8, hi)], fill="black", width=2)
            # Label above the whisker so the two never overlap.
            top_frac = rate if math.isnan(r["ci95"][1]) else max(rate, r["ci95"][1])
            d.text((cx, y_of(top_frac) - 6), _pct(r["rate"]), fill="black", font=small, anchor="md")
        d.text(
            (left + (g + 0.5) * group_w, h - bottom + 12),
            f"{q} ({s['n_pairs']} pairs)",
            fill="black",
            font=font,
            anchor="mt",
        )
    lx = left
    for _, name, color in series:
        d.rectangle([lx, h - 40, lx + 18, h - 22], fill=color)
        d.text((lx + 24, h - 31), name, fill="black", font=small, anchor="lm")
        lx += 40 + d.textlength(name, font=small)
    d.text((w - right, h - 31), "whiskers: Wilson 95% CI", fill="#555555", font=small, anchor="rm")
    img.save(path)


def write_report(db_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> dict:
    """Compute the report; if `out_dir` is given write report.{txt,json}, votes.csv, pairs.csv, win_rates.png."""
    conn = db.connect(db_path)
    try:
        rep = compute_report(conn)
        if out_dir is not None:
            os.makedirs(out_dir, exist_ok=True)
            votes, prs = vote_rows(conn), pair_rows(conn, rep)
            _write_csv(os.path.join(out_dir, "votes.csv"), votes, VOTE_COLUMNS)
            _write_csv(os.path.join(out_dir, "pairs.csv"), prs, list(prs[0]))
            with open(os.path.join(out_dir, "report.txt"), "w", encoding="utf-8") as f:
                f.write(format_report(rep) + "\n")
            with open(os.path.join(out_dir, "report.json"), "w", encoding="utf-8") as f:
                json.dump(_json_safe(rep), f, indent=2, allow_nan=False)
            draw_chart(rep, os.path.join(out_dir, "win_rates.png"))
    finally:
        conn.close()
    return rep
