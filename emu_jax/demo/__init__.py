"""The demo wing: the moving-shapes task end to end, built on the library and never imported by it.

`shapes` (generator, vocabulary), `dataset` (TFDS builder, registered with `emu_jax.data.registry`),
`recipe` (train the whole chain), `analyse` (read samples back), `evaluate`, `ablate_metrics` (the analyser
and FID / FVD stand-ins as `emu-video ablate` metrics), `cli`.
"""
