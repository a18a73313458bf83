"""The paper's schedule ablation (zero terminal SNR + v against the standard schedule + eps) on the demo's
keyframe stage, trained from scratch each way: a fresh U-Net on the shipped model's VAE and text encoder,
the recipe's first T2I phase (t2i_1: 1500 steps x 32), scored on held-out keyframes. Table 1's F arms cannot
test the schedule: F's spatial layers are a v-prediction T2I, so switching F alone to eps breaks it
(docs/ablate.md, "The paper's Table 1 on the demo model").

  emu-video demo train --workdir runs/demo --stages data        # the dataset (1 min)
  SHAPES_DATA=runs/demo/data emu-video ablate --study studies/demo_schedule.py --out runs/schedule
"""

import os

from emu_jax.demo.ablate_metrics import from_shipped_model

config = "configs/demo/shapes.py"
config_args = "t2i_1"
overrides = {
    **from_shipped_model(),
    "data.data_dir": os.environ.get("SHAPES_DATA", "runs/demo/data"),
    "train.init_from_groups": "vae,text",  # a fresh U-Net: both schedules train it from scratch
    "train.steps": int(os.environ.get("SCHEDULE_STEPS", "1500")),
}
arms = {
    "v": {},  # the recipe: zero terminal SNR + v (loss weighted as eps-prediction's)
    "eps": {"diffusion.zero_terminal_snr": False, "diffusion.prediction": "eps"},
}
eval = {
    "metrics": ["emu_jax.demo.ablate_metrics:looks_correct", "emu_jax.demo.ablate_metrics:fid_vae"],
    "num_items": int(os.environ.get("SCHEDULE_ITEMS", "96")),
    "seed": 1234,
    "batch_size": 16,
}
