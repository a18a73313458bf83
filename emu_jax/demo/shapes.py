"""Moving-shapes: a procedural, deterministic video-text generator (frames, captions, attributes).

A coloured shape crosses a plain background in one of eight directions. Every
attribute is recoverable from the pixels (colours are far apart in RGB, the
shape stays fully inside the frame, or with `free` starts at least its centre),
so a tiny text-to-video model trained on it can be scored by reading its
samples back (`emu_jax.demo.analyse`).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from typing import Mapping, Sequence

import numpy as np

# Shape colours: corners of the RGB cube, pairwise distance >= 255.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "cyan": (0, 255, 255),
}
# Backgrounds: distance >= 221 from every shape colour.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle", "diamond")
# Unit displacement (dx, dy) in image coordinates (y grows downwards).
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up-left": (-1, -1),
    "up-right": (1, -1),
    "down-left": (-1, 1),
    "down-right": (1, 1),
}
SIZE_RANGE = (0.25, 0.4)  # shape side as a fraction of the frame side
SPEED_RANGE = (0.5, 1.0)  # fraction of the free path crossed during the clip
# Where a clip starts: `path` inside the free path on the side its motion leaves (the default; the start
# then tells the direction), `centre` in the middle, `free` drawn independently of the direction.
START_MODES = ("path", "centre", "free")


def overhang(size: float) -> float:
    """How far past the free path (as a fraction of it) the shape's top-left corner may go while its
    centre stays inside the frame: half the shape side over the free path, resolution-free."""
    return size / (2.0 * (1.0 - size))


@dataclasses.dataclass(frozen=True)
class ShapeAttrs:
    """One clip's attributes, all resolution- and frame-rate-independent.

    `size`: shape side / frame side. `speed`: fraction of the free path (frame
    side minus shape side minus a 1-pixel margin each side) crossed over the
    whole clip, 0 = static.
    `start_x`, `start_y`: top-left corner at frame 0 as a fraction of the free
    path, in [0, 1]. The path may end up to `overhang(size)` past the free path
    (the shape partly leaves the frame, its centre never does); `sample_attributes`
    keeps the whole shape inside unless asked for `free` starts.
    """

    shape: str
    color: str
    background: str
    direction: str
    speed: float
    size: float
    start_x: float
    start_y: float

    def __post_init__(self):
        for field, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("color", self.color, COLORS),
            ("background", self.background, BACKGROUNDS),
            ("direction", self.direction, DIRECTIONS),
        ):
            if value not in allowed:
                raise ValueError(f"{field}={value!r} is not one of {sorted(allowed)}")
        if not 0.0 <= self.speed <= 1.0 or not 0.0 < self.size < 1.0:
            raise ValueError(f"speed must be in [0, 1] and size in (0, 1), got {self.speed}, {self.size}")
        h = overhang(self.size) + 1e-9
        for name, s, d in (("start_x", self.start_x, self.delta[0]), ("start_y", self.start_y, self.delta[1])):
            if not (0.0 <= s <= 1.0 and -h <= s + d * self.speed <= 1.0 + h):
                raise ValueError(
                    f"{name}={s} with speed {self.speed} takes the shape's centre out of the frame "
                    f"(direction {self.direction}; the start must be in [0, 1] and the end within "
                    f"{h:.3f} of it)"
                )

    @property
    def delta(self) -> tuple[int, int]:
        return DIRECTIONS[self.direction]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "ShapeAttrs":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: (v.decode() if isinstance(v, bytes) else v) for k, v in d.items() if k in names})


ANY = "any"  # a look field left to be drawn at random


def check_look(look: Sequence[str]) -> tuple[str, str, str]:
    """(colour, shape, background), each checked against its vocabulary or `ANY`."""
    if len(look) != 3:
        raise ValueError(f"look={tuple(look)} must be (colour, shape, background)")
    for field, value, allowed in zip(("colour", "shape", "background"), look, (COLORS, SHAPES, BACKGROUNDS)):
        if value != ANY and value not in allowed:
            raise ValueError(f"look {field}={value!r} is not {ANY!r} or one of {sorted(allowed)}")
    return tuple(str(v) for v in look)


def check_start(start: str, speed_range=SPEED_RANGE, size_range=SIZE_RANGE) -> str:
    """`start` checked against START_MODES, and against the speeds and sizes it must fit."""
    if start not in START_MODES:
        raise ValueError(f"start={start!r} is not one of {START_MODES}")
    if start == "centre" and speed_range[1] > 0.5:
        raise ValueError(
            f"start='centre' needs speeds <= 0.5 (half the free path), got speed_range={tuple(speed_range)}"
        )
    if start == "free" and speed_range[1] > 0.5 + overhang(size_range[0]):
        raise ValueError(
            f"start='free' needs speeds <= {0.5 + overhang(size_range[0]):.3f} at size "
            f"{size_range[0]} (every direction must keep the centre inside), got speed_range="
            f"{tuple(speed_range)}"
        )
    return start


def sample_attributes(
    rng: np.random.Generator,
    *,
    speed_range=SPEED_RANGE,
    size_range=SIZE_RANGE,
    look: Sequence[str] | None = None,
    start: str = "path",
) -> ShapeAttrs:
    """Draws one clip's attributes uniformly.

    `look` = (colour, shape, background) fixes those three (a one-look dataset: only the motion varies);
    a field given as `ANY` is drawn (`("any", "circle", "black")`: circles on black of every colour).
    `start` (START_MODES): `path` keeps the whole path inside the frame, so a shape moving right starts
    in the left part (the default); `centre` starts every clip in the middle; `free` draws the start
    uniformly from where all eight directions keep the shape's centre inside, independently of the
    direction, so the first frame says nothing about where the shape goes (it may partly leave).
    """
    check_start(start, speed_range, size_range)
    direction = str(rng.choice(list(DIRECTIONS)))
    speed = float(rng.uniform(*speed_range))
    # `free` needs the size for its start range, so draws it first; the other modes keep the old order.
    size = float(rng.uniform(*size_range)) if start == "free" else None
    starts = []
    for d in DIRECTIONS[direction]:
        if start == "centre":
            lo = hi = 0.5
        elif start == "free":  # the same range for every direction: [speed - h, 1 - speed + h] within [0, 1]
            h = overhang(size)
            lo, hi = max(0.0, speed - h), min(1.0, 1.0 - speed + h)
        else:  # moving +: start in [0, 1-speed]; moving -: start in [speed, 1]; still: anywhere
            lo, hi = (0.0, 1.0 - speed) if d > 0 else (speed, 1.0) if d < 0 else (0.0, 1.0)
        starts.append(float(rng.uniform(lo, hi)))
    color, shape, background = check_look(look) if look is not None else (ANY, ANY, ANY)
    # Drawn in this order (shape, colour, background) so that look=None keeps its old draws.
    shape = str(rng.choice(SHAPES)) if shape == ANY else shape
    color = str(rng.choice(list(COLORS))) if color == ANY else color
    background = str(rng.choice(list(BACKGROUNDS))) if background == ANY else background
    return ShapeAttrs(
        shape=shape,
        color=color,
        background=background,
        direction=direction,
        speed=speed,
        size=size if size is not None else float(rng.uniform(*size_range)),
        start_x=starts[0],
        start_y=starts[1],
    )


# Every word a caption can hold, in a fixed order: the word tokenizer shipped in `tokenizer_dir()`.
VOCABULARY = ("a", "moving", "on", "background", *COLORS, *SHAPES, *DIRECTIONS, *BACKGROUNDS)


def tokenizer_dir() -> str:
    """The folder holding VOCABULARY as a word tokenizer (`words.txt`), for `load_tokenizer(folder)`."""
    return str(importlib.resources.files("emu_jax.demo") / "tokenizer")


def caption(attrs: ShapeAttrs) -> str:
    """'a red circle moving left on a black background'."""
    return f"a {attrs.color} {attrs.shape} moving {attrs.direction} on a {attrs.background} background"


def _mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside-test in the shape's unit box: u, v in [-1, 1] from its centre (v down)."""
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "triangle":  # apex up, base at the bottom
        return (v <= 1.0) & (2.0 * np.abs(u) <= v + 1.0)
    raise ValueError(f"shape={shape!r} is not one of {SHAPES}")


def positions(attrs: ShapeAttrs, num_frames: int, size: int) -> np.ndarray:
    """Top-left corner in pixels per frame -> float (T, 2) as (x, y); linear from start to end.

    A 1-pixel margin keeps the frame border pure background (what `analyse.shape_mask` reads) while the
    path stays on the free path; past it (`free` starts) the shape is cut by the frame's edge.
    """
    side = attrs.size * size
    free = size - side - 2.0
    s = np.linspace(0.0, 1.0, num_frames) if num_frames > 1 else np.zeros(1)
    dx, dy = attrs.delta
    x = 1.0 + (attrs.start_x + dx * attrs.speed * s) * free
    y = 1.0 + (attrs.start_y + dy * attrs.speed * s) * free
    return np.stack([x, y], axis=-1)


def render_clip(
    attrs: ShapeAttrs, num_frames: int, size: int, fps: float | None = None, *, supersample: int = 4
) -> np.ndarray:
    """Renders the clip -> uint8 (num_frames, size, size, 3).

    The shape moves linearly, so `fps` only matters through `num_frames`
    (kept in the signature so callers state the rate they mean). Edges are
    anti-aliased by `supersample`^2 coverage sampling inside the shape's box.
    """
    del fps
    if num_frames < 1 or size < 4:
        raise ValueError(f"need num_frames >= 1 and size >= 4, got {num_frames}, {size}")
    bg = np.asarray(BACKGROUNDS[attrs.background], np.float32)
    fg = np.asarray(COLORS[attrs.color], np.float32)
    side = attrs.size * size
    out = np.empty((num_frames, size, size, 3), np.uint8)
    offs = (np.arange(supersample) + 0.5) / supersample
    for t, (x0, y0) in enumerate(positions(attrs, num_frames, size)):
        frame = np.broadcast_to(bg, (size, size, 3)).copy()
        # The shape's box, clipped to the frame (a `free` start's path may partly leave it).
        r0, r1 = max(0, int(np.floor(y0))), min(size, int(np.ceil(y0 + side)) + 1)
        c0, c1 = max(0, int(np.floor(x0))), min(size, int(np.ceil(x0 + side)) + 1)
        ys = (np.arange(r0, r1)[:, None] + offs[None, :]).reshape(-1)
        xs = (np.arange(c0, c1)[:, None] + offs[None, :]).reshape(-1)
        u = (xs[None, :] - x0) / side * 2.0 - 1.0
        v = (ys[:, None] - y0) / side * 2.0 - 1.0
        cover = _mask(attrs.shape, u, v).reshape(r1 - r0, supersample, c1 - c0, supersample).mean(axis=(1, 3))
        box = frame[r0:r1, c0:c1]
        frame[r0:r1, c0:c1] = box * (1.0 - cover[..., None]) + fg * cover[..., None]
        out[t] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return out
