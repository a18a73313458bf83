"""The video stage given real first frames of free- or centre-start clips (docs/demo.md, "Direction" item 19),
with word use on the same clips: whether F reads the direction word where the first frame cannot tell it.

    JAX_PLATFORMS=cpu [LOOK="red circle black"] python docs/probes/free_start_probe.py CHECKPOINT NUM_CLIPS [free|centre]

LOOK fixes the clips' colour, shape and background (a one-look stage's own clips).
"""
import json, os, sys, time

from emu_jax.sampling.pipeline import Pipeline
from emu_jax.demo import evaluate

ckpt, n = sys.argv[1], int(sys.argv[2])
start = sys.argv[3] if len(sys.argv) > 3 else "free"
look = os.environ["LOOK"].split() if os.environ.get("LOOK") else None
seed, t0 = 1234, time.time()
pipe = Pipeline.from_checkpoint(ckpt, use_interp=False, batch_size=min(n, 16), progress=False)
cfg = pipe.main.model.config
videos, attrs = evaluate.real_clips(n, seed, resolution=cfg.resolution, num_frames=cfg.num_frames,
                                    fps=float(cfg.fps), start=start, look=look)
out = {"ckpt": ckpt, "start": start, "look": look, "n": n,
       "word_use": evaluate.word_use(evaluate.model_loss(pipe.main, seed=seed), videos, attrs),
       **evaluate.given_first_frame(pipe, n, seed, start=start, look=look), "seconds": round(time.time() - t0, 1)}
print(json.dumps(out))
