"""The demo's analyser as `emu-video ablate` metrics (the library never imports the demo wing; a study
names these as `eval = {"metrics": ["emu_jax.demo.ablate_metrics:all_correct"]}`).

Items are held-out attribute draws (`evaluate.prompt_set(num_items, seed)`), so the study's own prompt
list is not used; each item scores 1 when the analyser reads every prompted attribute from its video.
"""

from __future__ import annotations

import numpy as np

from emu_jax.demo import analyse, evaluate, shapes


def prompts(num_items: int, seed: int) -> list[str]:
    """The captions these metrics sample (held-out draws): `emu-video ablate --sweep` needs no --prompts."""
    return [shapes.caption(w) for w in evaluate.prompt_set(int(num_items), int(seed))]


def _readings(ctx):
    n, seed = int(ctx.settings["num_items"]), int(ctx.settings["seed"])
    wanted = evaluate.prompt_set(n, seed)
    videos = ctx.sample(prompts(n, seed))
    readings = []
    for w, v in zip(wanted, videos):
        key, vid = analyse.analyse_video(v[:1]), analyse.analyse_video(v)
        reading = {**vid, **{k: key[k] for k in ("background", "color", "shape")}}  # as evaluate.score_samples
        readings.append(analyse.score(reading, w.to_dict()))
    return readings


def all_correct(ctx) -> np.ndarray:
    """Per item: 1.0 when every prompted attribute is read back from the sample, else 0.0."""
    return np.asarray([float(all(r.values())) for r in _readings(ctx)])


def attribute_accuracy(ctx) -> np.ndarray:
    """Per item: the fraction of prompted attributes read back from the sample."""
    return np.asarray([float(np.mean(list(r.values()))) for r in _readings(ctx)])


all_correct.better = attribute_accuracy.better = "higher"
all_correct.prompts = attribute_accuracy.prompts = prompts
