"""The video stage given real first frames of free-start clips of any look, at several guidance
settings (docs/demo.md, "Direction" item 21): whether stronger text guidance steers F by the word.

    JAX_PLATFORMS=cpu python docs/probes/guidance_probe.py CHECKPOINT NUM_CLIPS TEXT,IMAGE [TEXT,IMAGE ...]

e.g. `... emu_jax/assets/demo_model 32 4,2 8,2` (about 7 minutes per setting on 2 cores).
"""
import json, sys, time

from emu_jax.sampling.pipeline import Pipeline
from emu_jax.demo import evaluate

ckpt, n = sys.argv[1], int(sys.argv[2])
for spec in sys.argv[3:]:
    text, image = (float(x) for x in spec.split(","))
    t0 = time.time()
    pipe = Pipeline.from_checkpoint(ckpt, use_interp=False, batch_size=min(n, 16), progress=False,
                                             overrides={"guidance_text": text, "guidance_image": image})
    out = evaluate.given_first_frame(pipe, n, 1234, start="free")
    print(json.dumps({"guidance_text": text, "guidance_image": image, **out,
                      "seconds": round(time.time() - t0, 1)}), flush=True)
