"""JUICE pairwise human evaluation: build a study from two folders of samples,
serve it to raters in a browser, and report win rates with agreement stats.

Modules: `db` (SQLite storage), `study` (matching samples into pairs),
`app` (Flask rating page), `stats` (majority vote, intervals, Fleiss' kappa),
`report` (tables, CSV, PNG chart), `cli` (`emu-video juice ...`).
"""

QUESTIONS = ("quality", "faithfulness")

# Reasons a rater must tick (at least one) to justify each pick (SPEC: JUICE).
REASONS = {
    "quality": (
        ("pixel_sharpness", "Pixel sharpness"),
        ("motion_smoothness", "Motion smoothness"),
        ("recognisable_objects", "Recognisable objects / scenes"),
        ("frame_consistency", "Frame consistency"),
        ("amount_of_motion", "Amount of motion"),
    ),
    "faithfulness": (
        ("spatial_alignment", "Spatial text alignment"),
        ("temporal_alignment", "Temporal text alignment"),
    ),
}

QUESTION_TITLES = {
    "quality": "Which video has better quality?",
    "faithfulness": "Which video follows the text better?",
}
