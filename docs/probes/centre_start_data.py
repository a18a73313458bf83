"""Build a moving_shapes dataset in the direction toy's setting (docs/demo.md, "Direction" items 16 and 18):
a fixed size and speed, every clip starting at the centre, so only the caption's direction word tells where
the shape goes; one look (red circle on black), or with `any` every clip's colour, shape and background drawn
as in the real dataset. Patches `shapes.sample_attributes` for this process only. Kept to reproduce the
runs that used it; new data of this kind: `emu-video data build moving_shapes --start centre --speed-range 0.4 0.4
--size-range 0.3 0.3 [--look red circle black]` (other random draws, so not the same clips).

    JAX_PLATFORMS=cpu python docs/probes/centre_start_data.py DATA_DIR [any]
"""
import sys

from emu_jax.data import builders, shapes

LOOK, SIZE, SPEED = ("red", "circle", "black"), 0.3, 0.4  # from the centre, 0.4 of the free path stays inside
ANY_LOOK = False  # True: colour, shape and background drawn per clip


def centre_start(rng, **_):
    direction = str(rng.choice(list(shapes.DIRECTIONS)))
    color, shape, background = LOOK
    if ANY_LOOK:
        shape, color = str(rng.choice(shapes.SHAPES)), str(rng.choice(list(shapes.COLORS)))
        background = str(rng.choice(list(shapes.BACKGROUNDS)))
    return shapes.ShapeAttrs(shape=shape, color=color, background=background, direction=direction,
                             speed=SPEED, size=SIZE, start_x=0.5, start_y=0.5)


if __name__ == "__main__":
    ANY_LOOK = sys.argv[2:] == ["any"]
    shapes.sample_attributes = centre_start
    builders.prepare(builders.MovingShapes(data_dir=sys.argv[1], resolution=32, num_frames=40, fps=16.0,
                                           num_train=4096 if ANY_LOOK else 512, num_test=64, seed=0))
