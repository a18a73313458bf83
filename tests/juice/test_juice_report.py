"""JUICE report from a study with known votes: numbers, CSV, chart, CLI."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from emu_jax import cli
from emu_jax.juice import db
from emu_jax.juice.report import write_report

# pair -> five raters' (quality winner, faithfulness winner); reasons follow the quality winner.
VOTES = {
    1: ["a", "a", "a", "b", "b"],
    2: ["b"] * 5,
    3: ["a", "a", "tie", "tie", "b"],
    4: ["tie", "tie", "tie", "a", "b"],
}
REASON_FOR = {"a": ["pixel_sharpness"], "b": ["motion_smoothness", "amount_of_motion"], "tie": ["frame_consistency"]}


@pytest.fixture
def voted_study(make_study):
    path, s = make_study(raters_per_pair=5)
    conn = db.connect(path)
    for pid, winners in VOTES.items():
        for rater_id, w in enumerate(winners, start=1):
            a_on_left = bool(db.assignment(conn, rater_id, pid)["a_on_left"])
            choice = "tie" if w == "tie" else ("left" if (w == "a") == a_on_left else "right")
            # Faithfulness: everyone prefers a (complete agreement).
            fchoice = "left" if a_on_left else "right"
            db.insert_vote(
                conn,
                rater_id,
                pid,
                a_on_left,
                {"quality": (choice, w, REASON_FOR[w]), "faithfulness": (fchoice, "a", ["spatial_alignment"])},
            )
    conn.close()
    return path


def test_report_numbers(voted_study, tmp_path):
    rep = write_report(voted_study, tmp_path / "out")
    assert rep["n_votes"] == 20 and rep["n_pairs_total"] == 4 and rep["name_a"] == "Emu"
    q = rep["questions"]["quality"]
    assert q["outcomes"] == {"a": 1, "b": 1, "tie": 1, "no_majority": 1}
    assert q["win_a"]["rate"] == 0.25 and q["tie"]["count"] == 2
    assert q["fleiss_kappa"] == pytest.approx(0.12 / 0.645)
    assert q["agreement"] == {"pairs_with_2plus_votes": 4, "complete": 0.25, "split": 0.75}
    # a won 6 quality votes, b 9, tie 5; each b vote ticked two reasons.
    assert q["reasons"]["pixel_sharpness"] == {"total": 6, "a": 6, "b": 0, "tie": 0}
    assert q["reasons"]["amount_of_motion"]["b"] == 9 and q["reasons"]["frame_consistency"]["tie"] == 5
    assert q["reasons"]["recognisable_objects"]["total"] == 0
    f = rep["questions"]["faithfulness"]
    assert f["win_a"]["rate"] == 1.0 and f["win_a"]["ci95"][0] == pytest.approx(0.5101, abs=1e-4)
    assert np.isnan(f["fleiss_kappa"])  # one category only: kappa undefined, reported as n/a
    assert f["agreement"]["complete"] == 1.0


def test_report_files(voted_study, tmp_path):
    out = tmp_path / "out"
    write_report(voted_study, out)
    with open(out / "votes.csv") as fh:
        votes = list(csv.DictReader(fh))
    assert len(votes) == 20 and {v["quality_winner"] for v in votes} == {"a", "b", "tie"}
    # Choice (side) and winner (system) agree with the stored layout.
    for v in votes:
        if v["quality_choice"] != "tie":
            assert (v["quality_choice"] == "left") == ((v["quality_winner"] == "a") == (v["a_on_left"] == "1"))
    with open(out / "pairs.csv") as fh:
        pairs = {int(r["pair_id"]): r for r in csv.DictReader(fh)}
    assert [pairs[i]["quality_outcome"] for i in range(1, 5)] == ["a", "b", "none", "tie"]
    assert pairs[1]["quality_a"] == "3" and pairs[1]["quality_b"] == "2" and pairs[1]["n_votes"] == "5"
    rep = json.loads((out / "report.json").read_text())  # strict JSON: NaN written as null
    assert rep["questions"]["faithfulness"]["fleiss_kappa"] is None
    img = np.asarray(Image.open(out / "win_rates.png").convert("RGB"))
    assert img.shape == (540, 960, 3)
    # The a-wins bar colour (#1f77b4) and the b-wins bar colour (#ff7f0e) are both drawn.
    assert (img == [31, 119, 180]).all(-1).sum() > 1000 and (img == [255, 127, 14]).all(-1).sum() > 500
    text = (out / "report.txt").read_text()
    assert "Fleiss' kappa (a/b/tie, 4 pairs x 5 raters): 0.186" in text and "n/a" in text


def test_cli_report_and_create(voted_study, sample_dirs, tmp_path, capsys):
    assert cli.main(["juice", "report", "--db", voted_study]) == 0
    out = capsys.readouterr().out
    assert "Emu (a) vs Base (b)" in out and "25.0%" in out
    new_db = str(tmp_path / "new.db")
    assert (
        cli.main(
            [
                "juice",
                "create",
                "--a",
                sample_dirs[0],
                "--b",
                sample_dirs[1],
                "--db",
                new_db,
                "--raters-per-pair",
                "2",
                "--names",
                "X",
                "Y",
                "--port",
                "9123",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    links = [line.strip() for line in out.splitlines() if "/r/" in line]
    assert len(links) == 2 and all(link.startswith("http://127.0.0.1:9123/r/") for link in links)
    assert "4 pairs" in out
    assert (
        cli.main(
            ["juice", "create", "--a", str(tmp_path / "missing"), "--b", sample_dirs[1], "--db", str(tmp_path / "x.db")]
        )
        == 2
    )
    assert "missing" in capsys.readouterr().err
    assert cli.main(["juice", "create", "--a", sample_dirs[0]]) == 2  # --b and --db are required
    assert "--b" in capsys.readouterr().err
    (tmp_path / "junk.db").write_bytes(b"not sqlite at all" * 100)
    for argv in (
        ["serve", "--db", str(tmp_path / "none.db")],
        ["serve", "--db", str(tmp_path / "junk.db")],
        ["report", "--db", str(tmp_path / "none.db")],
        ["serve", "--db", voted_study, "--port", "70000"],
    ):
        assert cli.main(["juice", *argv]) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err and ("database" in err or "70000" in err), (argv, err)


def test_report_of_study_without_votes(make_study):
    path, _ = make_study()
    rep = write_report(path)
    q = rep["questions"]["quality"]
    assert rep["n_votes"] == 0 and q["n_pairs"] == 0 and np.isnan(q["win_a"]["rate"])
