"""The video stage given real first frames of free- or centre-start clips (docs/demo.md, "Direction" item 19),
with word use on the same clips: whether F reads the direction word where the first frame cannot tell it.

    JAX_PLATFORMS=cpu python docs/probes/free_start_probe.py CHECKPOINT NUM_CLIPS [free|centre]
"""
import json, sys, time

from emu_jax import sampling
from emu_jax.demo import evaluate

ckpt, n = sys.argv[1], int(sys.argv[2])
start = sys.argv[3] if len(sys.argv) > 3 else "free"
seed, t0 = 1234, time.time()
pipe = sampling.Pipeline.from_checkpoint(ckpt, use_interp=False, batch_size=min(n, 16), progress=False)
cfg = pipe.main.model.config
videos, attrs = evaluate.real_clips(n, seed, resolution=cfg.resolution, num_frames=cfg.num_frames,
                                    fps=float(cfg.fps), start=start)
out = {"ckpt": ckpt, "start": start, "n": n,
       "word_use": evaluate.word_use(evaluate.model_loss(pipe.main, seed=seed), videos, attrs),
       **evaluate.given_first_frame(pipe, n, seed, start=start), "seconds": round(time.time() - t0, 1)}
print(json.dumps(out))
