"""Build a moving_shapes dataset in the direction toy's setting (docs/demo.md, "Direction" item 16): one look,
a fixed size and speed, every clip starting at the centre, so only the caption's direction word tells where
the shape goes. Patches `shapes.sample_attributes` for this process only; not a shipped option.

    JAX_PLATFORMS=cpu python docs/probes/centre_start_data.py DATA_DIR
"""
import sys

from emu_jax.data import builders, shapes

LOOK, SIZE, SPEED = ("red", "circle", "black"), 0.3, 0.4  # from the centre, 0.4 of the free path stays inside


def centre_start(rng, **_):
    direction = str(rng.choice(list(shapes.DIRECTIONS)))
    return shapes.ShapeAttrs(shape=LOOK[1], color=LOOK[0], background=LOOK[2], direction=direction,
                             speed=SPEED, size=SIZE, start_x=0.5, start_y=0.5)


if __name__ == "__main__":
    shapes.sample_attributes = centre_start
    builders.prepare(builders.MovingShapes(data_dir=sys.argv[1], resolution=32, num_frames=40, fps=16.0,
                                           num_train=512, num_test=64, seed=0))
