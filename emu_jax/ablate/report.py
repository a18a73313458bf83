"""The study's results: ablate.json, ablate.md (one table per metric) and ablate.png (if matplotlib)."""

from __future__ import annotations

import json
import pathlib

from emu_jax.ablate import metrics, stats
from emu_jax.ablate.runner import write_atomic


def summarize(records: dict[str, dict], baseline: str, resamples: int = 2000, seed: int = 0) -> dict:
    """Per arm and metric: bootstrap interval of the mean; per non-baseline arm: paired difference
    arm - baseline over the same items (`excludes_zero`: the evaluation resolves the difference)."""
    base = records[baseline]
    kw = {"resamples": int(resamples), "seed": int(seed)}
    out = {"baseline": baseline, "metrics": {}}
    for m, base_values in base["values"].items():
        rows = {}
        for name, rec in records.items():
            row = {"ci": stats.bootstrap_ci(rec["values"][m], **kw), "overrides": rec["overrides"]}
            if name != baseline:
                row["vs_baseline"] = stats.paired(rec["values"][m], base_values, **kw)
            rows[name] = row
        out["metrics"][m] = {"better": base["better"].get(m, "lower"), "arms": rows}
    for m in base.get("set_metrics", []):
        distance = metrics.frechet_to(base["features"][f"{m}:real"])
        rows = {}
        for name, rec in records.items():
            ci, d = stats.set_intervals(
                distance,
                rec["features"][f"{m}:fake"],
                None if name == baseline else base["features"][f"{m}:fake"],
                **kw,
            )
            rows[name] = {"ci": ci, "overrides": rec["overrides"], **({"vs_baseline": d} if d else {})}
        out["metrics"][m] = {"better": base["better"].get(m, "lower"), "arms": rows, "set_level": True}
    out["per_item"] = {name: rec["values"] for name, rec in records.items()}
    return out


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def markdown(summary: dict) -> str:
    lines = [f"# Ablation study (baseline: {summary['baseline']})", ""]
    for m, block in summary["metrics"].items():
        what = "Fréchet distance to the reference set" if block.get("set_level") else "mean"
        lines += [f"## {m} ({block['better']} is better; 95% bootstrap intervals over items)", ""]
        lines += [
            f"| arm | overrides | {what} [95% CI] | arm - baseline [95% CI] | resolved |",
            "|---|---|---|---|---|",
        ]
        for name, row in block["arms"].items():
            ci = row["ci"]
            over = ", ".join(f"{k}={v}" for k, v in row["overrides"].items()) or "-"
            d = row.get("vs_baseline")
            diff = f"{_fmt(d['mean'])} [{_fmt(d['lo'])}, {_fmt(d['hi'])}]" if d else "(baseline)"
            resolved = ("yes" if d["excludes_zero"] else "no") if d else ""
            lines.append(
                f"| {name} | {over} | {_fmt(ci['mean'])} [{_fmt(ci['lo'])}, {_fmt(ci['hi'])}] | {diff} | {resolved} |"
            )
        lines.append("")
    return "\n".join(lines)


def chart(summary: dict, path: pathlib.Path) -> str | None:
    """One panel per metric: each arm's mean with its interval. Returns a note when skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install 'emu_jax[plots]')"
    names = list(summary["metrics"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for ax, m in zip(axes[0], names):
        arms = summary["metrics"][m]["arms"]
        means = [a["ci"]["mean"] for a in arms.values()]
        err = [
            [a["ci"]["mean"] - a["ci"]["lo"] for a in arms.values()],
            [a["ci"]["hi"] - a["ci"]["mean"] for a in arms.values()],
        ]
        ax.errorbar(range(len(arms)), means, yerr=err, fmt="o", capsize=4)
        ax.set_xticks(range(len(arms)), list(arms), rotation=30, ha="right")
        ax.set_title(f"{m.rsplit(':', 1)[-1]} ({summary['metrics'][m]['better']} is better)")  # MODULE: dropped
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def write(records: dict[str, dict], baseline: str, out: pathlib.Path, resamples: int = 2000, seed: int = 0) -> dict:
    out = pathlib.Path(out)
    summary = summarize(records, baseline, resamples, seed)
    note = chart(summary, out / "ablate.png")
    if note:
        summary["chart"] = note
    md = markdown(summary) + (f"\n_{note}_\n" if note else "\n![chart](ablate.png)\n")
    write_atomic(out / "ablate.json", json.dumps(summary, indent=1))
    write_atomic(out / "ablate.md", md)
    return summary
