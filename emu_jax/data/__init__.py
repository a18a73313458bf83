"""Video-text data: TFDS builders (a folder of videos; applications register more), PyAV I/O,
grain pipeline, motion score.

Import submodules directly (`from emu_jax.data import pipeline`); this package
file stays empty so that importing one piece does not pull in TFDS or PyAV.
"""
