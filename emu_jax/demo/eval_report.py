"""The `emu-video demo eval` report as text: model vs ceiling per attribute, against the targets.

`emu_jax.demo.evaluate.run` builds the report dict; this module only formats it.
"""

from __future__ import annotations

TARGETS = {"color_accuracy": 0.90, "shape_accuracy": 0.90, "direction_accuracy": 0.80, "background_accuracy": 0.95}


def format_report(report: dict) -> str:
    """A short table: model vs ceiling per attribute, with the issue's targets."""
    m, f_ceil = report["model"], report.get("ceiling") or {}
    # With interpolation the unprefixed keys read the 16 fps video, so their ceiling is the real clips at
    # I's length and rate; `f_video_*` keys read F's 8 frames, whose ceiling is the 8-frame one.
    i_ceil = report.get("interp_ceiling") or {}
    c = {**(i_ceil or f_ceil), **{"f_video_" + k: v for k, v in f_ceil.items()}}
    c["f_video_all_correct"] = f_ceil.get("all_correct")
    # I given real clips' frames is read against those same real clips.
    c |= {"interp_given_real_" + k: v for k, v in i_ceil.items()}
    interp = "off"
    if report["interpolation"]:
        which = report.get("interp_run") or report.get("interp_checkpoint")
        interp = f"on ({which}, {report.get('interp_num_steps')} steps)"
    lines = [
        f"checkpoint {report['checkpoint']}  prompts {report['num_prompts']} (seed {report['seed']}, "
        f"{report['num_steps']} steps, interpolation {interp}, "
        f"{report['sampling_seconds']} s sampling)",
        f"{'attribute':<40}{'model':>8}{'ceiling':>9}{'target':>8}",
    ]
    for key in (
        "background_accuracy",
        "color_accuracy",
        "shape_accuracy",
        "direction_accuracy",
        "all_correct",
        "start_side_accuracy",
        "given_first_frame_direction_accuracy",
        "given_first_frame_consistent_fraction",
        "consistent_fraction",
        "f_video_direction_accuracy",
        "f_video_all_correct",
        "f_video_consistent_fraction",
        "jumpy_fraction",
        "f_video_jumpy_fraction",
        "jumpy_not_in_f",
        "interp_given_real_direction_accuracy",
        "interp_given_real_consistent_fraction",
        "interp_given_real_jumpy_fraction",
        "median_jump_ratio",
        "mean_area_cv",
        "video_frame0_color_accuracy",
        "video_frame0_shape_accuracy",
        "black_background_brightness_error",
        "white_background_brightness_error",
        "interp_given_rms",
        "video_interframe_rms",
    ):
        if key not in m:
            continue
        target = f"{TARGETS[key]:.2f}" if key in TARGETS else ""
        ceil = f"{c[key]:.3f}" if c.get(key) is not None else ""
        lines.append(f"{key:<40}{m[key]:>8.3f}{ceil:>9}{target:>8}")
    for group in ("text_sensitivity", "word_use"):
        for field, value in (m.get(group) or {}).items():
            lines.append(f"{group + '.' + field:<40}{value:>8.4f}")
    return "\n".join(lines)
