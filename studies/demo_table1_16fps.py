"""Table 1's arms on the output users get: the 16 fps video. Each arm's F (trained by
studies/demo_table1.py) makes its 8 frames as there, on the first 40 of the same prompts with the same
noise, and the shipped I interpolates them to 37 frames; F's own scores come from the same run, so every
row also shows what interpolation changes. I is not retrained per arm (the paper's I comes from its F): a
shrink for 2 CPU cores. The eps arm is left out: its F draws no consistent video (docs/ablate.md).

  SHAPES_DATA=runs/demo/data_s8 emu-video ablate --study studies/demo_table1.py --out runs/table1   # first
  TABLE1_OUT=runs/table1 emu-video ablate --study studies/demo_table1_16fps.py --out runs/table1_16fps
"""

import os

config = "configs/demo/shapes.py"
config_args = "t2v_s10"
_table1 = os.environ.get("TABLE1_OUT", "runs/table1")
arms = {name: {"checkpoint": f"{_table1}/arms/{name}/run"} for name in ("factorised", "direct", "spatial_tuned")}
baseline = "factorised"
eval = {
    # The 16 fps metrics first: their run samples F's videos too, which the F metrics then read.
    "metrics": [
        f"emu_jax.demo.ablate_metrics:{m}"
        for m in (
            "all_correct_16fps",
            "direction_16fps",
            "consistent_16fps",
            "smooth_16fps",
            "all_correct",
            "direction",
            "consistent",
        )
    ],
    "num_items": int(os.environ.get("TABLE1_16FPS_ITEMS", "40")),
    "seed": 1234,
    "batch_size": 20,
}
