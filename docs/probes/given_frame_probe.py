"""Word use and the video stage given real first frames (docs/demo.md, "Direction" item 18), on the dataset's
held-out clips, or with CENTRE=1 on centre-start clips (one look; ANY=1: every look); SAMPLE=0 skips sampling.

    JAX_PLATFORMS=cpu [CENTRE=1 [ANY=1]] [SAMPLE=0] python docs/probes/given_frame_probe.py CHECKPOINT NUM_CLIPS
"""
import json, os, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # centre_start_data beside it
from emu_jax.sampling.pipeline import Pipeline
from emu_jax.data import shapes
from emu_jax.demo import evaluate

ckpt, n = sys.argv[1], int(sys.argv[2])
if os.environ.get("CENTRE") == "1":
    import centre_start_data
    centre_start_data.ANY_LOOK = os.environ.get("ANY") == "1"
    shapes.sample_attributes = centre_start_data.centre_start
seed = 1234
t0 = time.time()
pipe = Pipeline.from_checkpoint(ckpt, use_interp=False, batch_size=min(n, 16), progress=False)
cfg = pipe.main.model.config
videos, attrs = evaluate.real_clips(n, seed, resolution=cfg.resolution, num_frames=cfg.num_frames, fps=float(cfg.fps))
out = {"ckpt": ckpt, "centre": os.environ.get("CENTRE") == "1", "n": n}
out["word_use"] = evaluate.word_use(evaluate.model_loss(pipe.main, seed=seed), videos, attrs)
if os.environ.get("SAMPLE", "1") == "1":
    out.update(evaluate.given_first_frame(pipe, n, seed))
out["seconds"] = round(time.time() - t0, 1)
print(json.dumps(out))
