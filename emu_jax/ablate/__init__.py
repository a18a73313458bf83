"""Research ablations as a tool: a study file names a base config and arms (config overrides); every arm
trains with the same steps, data order and seeds, is evaluated on the same items with the same noise, and
the report gives each metric's bootstrap interval and a paired comparison of every arm to the baseline.

study.py loads and validates the study; runner.py trains and evaluates one arm (resumable); metrics.py is
the per-item metric registry; stats.py the bootstrap; report.py the JSON / markdown / chart; cli.py
`emu-video ablate`.
"""
