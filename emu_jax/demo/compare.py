"""`emu-video demo compare NEW.json BASE.json`: two `demo eval` reports, prompt by prompt.

Both reports must come from the same prompt seed; they are compared on the prompts they share (the first
`min` of the two counts: the prompt set is a prefix-stable draw). Each per-prompt measure is paired, and its
difference gets a bootstrap interval over prompts, as `emu-video ablate` does for arms.
"""

from __future__ import annotations

import numpy as np

from emu_jax.ablate import stats
from emu_jax.demo import analyse, evaluate, shapes
from emu_jax.errors import UserError


def per_prompt(report: dict, wanted: list[shapes.ShapeAttrs]) -> dict[str, np.ndarray]:
    """Per-prompt 0/1 values whose means are the report's summary fields (`analyse.summarise`), for the
    first `len(wanted)` prompts; with interpolation also F's own video and the jumps F does not have."""
    rows = report["per_prompt"][: len(wanted)]
    scores = [analyse.score(r, w.to_dict()) for r, w in zip(rows, wanted)]
    out = {f"{a}_accuracy": [s[a] for s in scores] for a in analyse.ATTRIBUTES}
    out["all_correct"] = [all(s.values()) for s in scores]
    out["consistent_fraction"] = [r["consistent"] for r in rows]
    if not all("jump_ratio" in r for r in rows):  # a keyframe-only (t2i) report
        return {k: np.asarray(v, np.float64) for k, v in out.items()}
    jumpy = [r["jump_ratio"] > analyse.JUMP_LIMIT for r in rows]  # NaN (no track) is not a jump
    out["jumpy_fraction"] = jumpy
    if all("f_direction" in r for r in rows):
        f_jumpy = [r["f_jump_ratio"] > analyse.JUMP_LIMIT for r in rows]
        f_right = [r["f_direction"] == w.direction for r, w in zip(rows, wanted)]
        out["f_video_direction_accuracy"] = f_right
        out["f_video_all_correct"] = [
            f and s["background"] and s["color"] and s["shape"] for f, s in zip(f_right, scores)
        ]
        out["f_video_consistent_fraction"] = [r["f_consistent"] for r in rows]
        out["jumpy_not_in_f"] = [j and not fj for j, fj in zip(jumpy, f_jumpy)]
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def compare(new: dict, base: dict, *, resamples: int = 2000) -> dict:
    """Per measure both reports have: each one's mean on the shared prompts and the paired difference
    new - base with its 95% bootstrap interval (`excludes_zero`: a difference these prompts resolve)."""
    for name, r in (("NEW", new), ("BASE", base)):
        if not r.get("per_prompt") or "seed" not in r:
            raise UserError(f"{name} is not a `demo eval` report with per-prompt rows (no 'per_prompt' or 'seed')")
    if new["seed"] != base["seed"]:
        raise UserError(f"the reports sampled different prompts: seed {new['seed']} vs {base['seed']}")
    n = min(len(new["per_prompt"]), len(base["per_prompt"]))
    wanted = evaluate.prompt_set(n, new["seed"])
    for name, r in (("NEW", new), ("BASE", base)):
        for i, (row, w) in enumerate(zip(r["per_prompt"], wanted)):
            got = row.get("prompt") if isinstance(row, dict) else None
            if got != shapes.caption(w):
                raise UserError(f"{name}'s prompt {i} is {got!r}, not seed {r['seed']}'s {shapes.caption(w)!r}")
    a, b = per_prompt(new, wanted), per_prompt(base, wanted)
    measures = {}
    for key in [k for k in a if k in b]:
        d = stats.paired(a[key], b[key], resamples=resamples)
        measures[key] = {"new": float(a[key].mean()), "base": float(b[key].mean()), "diff": d}
    out = {"num_prompts": n, "seed": new["seed"], "measures": measures}
    if "jumpy_fraction" in measures:
        out["median_jump_ratio"] = {
            name: float(np.nanmedian([row["jump_ratio"] for row in r["per_prompt"][:n]]))
            for name, r in (("new", new), ("base", base))
        }
    return out


ORDER = (
    "direction_accuracy",
    "all_correct",
    "consistent_fraction",
    "jumpy_fraction",
    "jumpy_not_in_f",
    "f_video_direction_accuracy",
    "f_video_all_correct",
    "f_video_consistent_fraction",
    "background_accuracy",
    "color_accuracy",
    "shape_accuracy",
)


def format_comparison(result: dict, new_name: str, base_name: str) -> str:
    """A table: each measure's two means and their paired difference with its interval."""
    lines = [
        f"NEW {new_name} vs BASE {base_name}: {result['num_prompts']} shared prompts (seed {result['seed']}); "
        "new - base with 95% bootstrap intervals over prompts, * where the interval excludes 0",
        f"{'measure':<32}{'new':>7}{'base':>7}{'diff':>8}  interval",
    ]
    m = result["measures"]
    for key in [k for k in ORDER if k in m]:
        r, d = m[key], m[key]["diff"]
        star = " *" if d["excludes_zero"] else ""
        lines.append(
            f"{key:<32}{r['new']:>7.3f}{r['base']:>7.3f}{d['mean']:>+8.3f}  [{d['lo']:+.3f}, {d['hi']:+.3f}]{star}"
        )
    if "median_jump_ratio" in result:
        j = result["median_jump_ratio"]
        lines.append(f"{'median_jump_ratio':<32}{j['new']:>7.3f}{j['base']:>7.3f}{j['new'] - j['base']:>+8.3f}")
    return "\n".join(lines)
