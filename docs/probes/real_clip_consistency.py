"""The analyser's consistency test on real held-out clips per start mode (docs/demo.md, "Direction"
item 20): whether free starts themselves make videos fail it (they do not: 200 of 200 pass).

    JAX_PLATFORMS=cpu python docs/probes/real_clip_consistency.py [NUM_CLIPS]

Clips as F sees them (8 frames at 4 fps, 32 px), seed 1234 as `demo eval`; about 2 minutes on 2 cores.
"""
import json, sys

import numpy as np

from emu_jax.data import clips
from emu_jax.demo import analyse, evaluate

n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
for start in ("path", "free"):
    videos, attrs = evaluate.real_clips(n, 1234, resolution=32, num_frames=8, fps=4.0, start=start)
    reads = [analyse.analyse_video(clips.from_unit_range(v)) for v in videos]
    summary = analyse.summarise(reads, [a.to_dict() for a in attrs])
    print(json.dumps({"start": start, "clips": n, "consistent_fraction": summary["consistent_fraction"],
                      "mean_area_cv": round(summary["mean_area_cv"], 4),
                      "direction_accuracy": summary["direction_accuracy"],
                      "shape_missing_in_a_frame": float(np.mean([r["present"] < 1 for r in reads])),
                      "colour_changed": float(np.mean([r["color_agreement"] < 1 for r in reads]))}))
