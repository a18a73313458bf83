"""Sampling: text -> keyframe -> video -> interpolated video -> files (SPEC "Inference path").

One concept per module, imported from where it lives:

- `settings`: `Settings` (the recipe's sampling defaults) and the argument checks every entry point uses;
- `stages`: the pure stage functions (keyframe, video, interpolation, decode) and per-item keys;
- `pipeline`: `Pipeline`, which compiles the stages once per batch shape and runs batches on a mesh;
- `cli`: `emu-video sample`.

Checkpoint opening is `emu_jax.sampling.loading`; image preparation `emu_jax.data.images`.
"""
