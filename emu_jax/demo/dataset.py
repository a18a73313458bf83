"""The moving-shapes TFDS builder and its `emu-video data build moving_shapes` entry.

Importing this module defines `MovingShapes` (TFDS registers it as `moving_shapes`) and registers the
build options with `emu_jax.data.registry`; the top-level CLI imports it before `emu-video data`.
Reading a prepared dataset needs neither: TFDS restores it from its stored `dataset_info.json`.
"""

from __future__ import annotations

import argparse
import functools

import numpy as np
import tensorflow_datasets as tfds

from emu_jax.data import builders, registry, video_io
from emu_jax.demo import shapes


class MovingShapes(builders.LocalBuilder):
    """Procedural coloured shapes moving on plain backgrounds, stored as H.264 mp4 + captions + attributes.

    Example `i` of a split is drawn from `np.random.default_rng([seed, split_id, i])`,
    so a build is reproducible and independent of generation order.
    """

    VERSION = tfds.core.Version("1.0.0")

    def __init__(
        self,
        *,
        resolution: int = 32,
        num_frames: int = 16,
        fps: float = 8.0,
        num_train: int = 256,
        num_test: int = 32,
        seed: int = 0,
        crf: int = 18,
        speed_range: tuple[float, float] = shapes.SPEED_RANGE,
        look: tuple[str, str, str] | None = None,
        start: str = "path",
        size_range: tuple[float, float] = shapes.SIZE_RANGE,
        **kwargs,
    ):
        if resolution < 8 or resolution % 2:
            raise ValueError(f"resolution must be even and >= 8 (H.264 yuv420p), got {resolution}")
        if num_frames < 2 or fps <= 0 or num_train < 1 or num_test < 0:
            raise ValueError(
                f"need num_frames >= 2, fps > 0, num_train >= 1, num_test >= 0; got "
                f"{num_frames}, {fps}, {num_train}, {num_test}"
            )
        lo, hi = (float(v) for v in speed_range)
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(
                f"speed_range={tuple(speed_range)} must satisfy 0 <= low <= high <= 1 "
                "(fractions of the free path crossed per clip)"
            )
        s_lo, s_hi = (float(v) for v in size_range)
        if not 0.0 < s_lo <= s_hi < 1.0:
            raise ValueError(
                f"size_range={tuple(size_range)} must satisfy 0 < low <= high < 1 (shape side / frame side)"
            )
        shapes.check_start(start, (lo, hi), (s_lo, s_hi))
        self._params = dict(
            resolution=resolution,
            num_frames=num_frames,
            fps=float(fps),
            num_train=num_train,
            num_test=num_test,
            seed=seed,
            crf=crf,
            speed_range=[lo, hi],
        )
        # Each only when set, so the default build's metadata is unchanged.
        if look is not None:
            self._params["look"] = list(shapes.check_look(look))
        if start != "path":
            self._params["start"] = start
        if (s_lo, s_hi) != tuple(shapes.SIZE_RANGE):
            self._params["size_range"] = [s_lo, s_hi]
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        f = tfds.features
        attrs = {
            "shape": f.Text(),
            "color": f.Text(),
            "background": f.Text(),
            "direction": f.Text(),
            "speed": f.Scalar(dtype=np.float32),
            "size": f.Scalar(dtype=np.float32),
            "start_x": f.Scalar(dtype=np.float32),
            "start_y": f.Scalar(dtype=np.float32),
        }
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=f.FeaturesDict({**builders.video_features(), **attrs}),
            metadata=tfds.core.MetadataDict(build=dict(self._params)),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        splits = {"train": self._generate_examples(0, self._params["num_train"])}
        if self._params["num_test"]:
            splits["test"] = self._generate_examples(1, self._params["num_test"])
        return splits

    def _generate_examples(self, split_id: int, count: int):
        return self._examples(
            ("train", "test")[split_id], range(count), functools.partial(_shapes_item, self._params, split_id)
        )


def _shapes_item(p: dict, split_id: int, i: int):
    """Example `i` of split `split_id` -> (key, record); module level so Beam workers can unpickle it."""
    return f"{split_id}_{i:07d}", make_shapes_example(
        np.random.default_rng([p["seed"], split_id, i]),
        key=f"{'train' if split_id == 0 else 'test'}_{i:07d}",
        resolution=p["resolution"],
        num_frames=p["num_frames"],
        fps=p["fps"],
        crf=p["crf"],
        speed_range=tuple(p["speed_range"]),
        look=p.get("look"),
        start=p.get("start", "path"),
        size_range=tuple(p.get("size_range", shapes.SIZE_RANGE)),
    )


def make_shapes_example(
    rng: np.random.Generator,
    *,
    key: str,
    resolution: int,
    num_frames: int,
    fps: float,
    crf: int = 18,
    speed_range: tuple[float, float] = shapes.SPEED_RANGE,
    look: tuple[str, str, str] | None = None,
    start: str = "path",
    size_range: tuple[float, float] = shapes.SIZE_RANGE,
) -> dict:
    """One moving-shapes record: attributes from `rng` (`shapes.sample_attributes`), frames rendered and
    encoded as H.264 mp4."""
    attrs = shapes.sample_attributes(rng, speed_range=speed_range, look=look, start=start, size_range=size_range)
    data = video_io.encode_mp4(shapes.render_clip(attrs, num_frames, resolution, fps), fps, crf=crf)
    info = video_io.VideoInfo(num_frames, float(fps), num_frames / fps, resolution, resolution, "h264")
    return {**builders.video_record(key, data, shapes.caption(attrs), info), **attrs.to_dict()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`emu-video data build moving_shapes` options."""
    p = parser
    p.add_argument("--data-dir", required=True, help="TFDS data_dir to write into")
    p.add_argument("--num-train", type=int, default=256, help="train examples (default 256)")
    p.add_argument("--num-test", type=int, default=32, help="test examples (default 32)")
    p.add_argument("--resolution", type=int, default=32, help="frame side in pixels, even (default 32)")
    p.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate of the stored videos (default 8)")
    p.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    p.add_argument(
        "--speed-range",
        type=float,
        nargs=2,
        default=shapes.SPEED_RANGE,
        metavar=("LOW", "HIGH"),
        help="fraction of the free path a shape crosses per video, drawn uniformly (default %(default)s)",
    )
    p.add_argument(
        "--look",
        nargs=3,
        metavar=("COLOUR", "SHAPE", "BACKGROUND"),
        help="fix the colour, shape and background of every clip, e.g. `red circle black` "
        "(a one-look dataset, where only the motion varies); `any` for a field draws it, "
        "e.g. `any circle black` (default: all drawn at random)",
    )
    p.add_argument(
        "--start",
        choices=shapes.START_MODES,
        default="path",
        help="where clips start: path (on the side the motion leaves, so the first frame tells "
        "the direction; default), centre, or free (drawn independently of the direction; "
        "the shape may partly leave the frame)",
    )
    p.add_argument(
        "--size-range",
        type=float,
        nargs=2,
        default=shapes.SIZE_RANGE,
        metavar=("LOW", "HIGH"),
        help="shape side / frame side, drawn uniformly (default %(default)s)",
    )


def make_builder(args: argparse.Namespace) -> MovingShapes:
    return MovingShapes(
        resolution=args.resolution,
        num_frames=args.frames,
        fps=args.fps,
        num_train=args.num_train,
        num_test=args.num_test,
        seed=args.seed,
        speed_range=tuple(args.speed_range),
        look=args.look,
        start=args.start,
        size_range=tuple(args.size_range),
        data_dir=args.data_dir,
    )


registry.register(
    registry.DatasetKind(
        name="moving_shapes",
        help="synthetic coloured shapes moving in 8 directions",
        description="Procedural moving shapes: H.264 clips, captions and attributes.",
        add_arguments=add_arguments,
        make_builder=make_builder,
    )
)
