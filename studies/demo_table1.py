"""The paper's Table 1 directions on the moving-shapes demo, at equal compute, shrunk for 2 CPU cores.

Every arm continues the shipped model's F (the end of the direction curriculum) with the curriculum's
last stage (t2v_s10: data_s8, lr 1e-3 cosine, batch 8) for the same steps, data order and seeds, with one
thing changed. What the shrink leaves out: the arms do not retrain T2I, so the eps arm switches F's
objective on spatial layers that a v-prediction T2I trained (the paper trains both stages each way).

  emu-video demo train --workdir runs/demo --stages data_s8        # the dataset (1 min)
  SHAPES_DATA=runs/demo/data_s8 emu-video ablate --study studies/demo_table1.py --out runs/table1
"""

import os

from emu_jax.demo.ablate_metrics import from_shipped_model

config = "configs/demo/shapes.py"
config_args = "t2v_s10"
overrides = {
    **from_shipped_model(),
    "data.data_dir": os.environ.get("SHAPES_DATA", "runs/demo/data_s8"),
    "train.steps": int(os.environ.get("TABLE1_STEPS", "300")),
    "train.save_every": 100,
}
arms = {
    "factorised": {},  # the recipe: image + text conditioned, frozen spatial layers, zero terminal SNR + v
    # Direct text-to-video: F never sees the image in training and samples from the text alone.
    "direct": {
        "train.drop_text": 0.0,
        "train.drop_image": 0.95,
        "train.drop_both": 0.05,
        "sampling.video_from": "text",
    },
    "eps": {"diffusion.zero_terminal_snr": False, "diffusion.prediction": "eps"},
    "spatial_tuned": {"train.trainable": "all"},
}
baseline = "factorised"
eval = {
    "metrics": [
        "emu_jax.demo.ablate_metrics:all_correct",
        "emu_jax.demo.ablate_metrics:direction",
        "emu_jax.demo.ablate_metrics:consistent",
        # FID / FVD stand-ins: the demo VAE encoder as the feature net (no Inception / I3D weights here).
        "emu_jax.demo.ablate_metrics:fid_vae",
        "emu_jax.demo.ablate_metrics:fvd_vae",
    ],
    "num_items": int(os.environ.get("TABLE1_ITEMS", "96")),
    "seed": 1234,
    "batch_size": 16,
}
