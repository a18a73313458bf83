"""JUICE stays blind and private: media headers carry nothing but the bytes' type and length, the
study file is 0600, report CSVs cannot run formulas, huge ids are 404, 0.0.0.0 gives usable links."""

from __future__ import annotations

import csv
import os
import re
import stat

import pytest

from emu_jax.juice import db
from emu_jax.juice.app import create_app
from emu_jax.juice.report import write_report
from emu_jax.juice.study import create_study, rater_links
from juice_helpers import PROMPTS, form_fields, write_samples

GOOD = {
    "quality": "left",
    "quality_reasons": ["pixel_sharpness"],
    "faithfulness": "right",
    "faithfulness_reasons": ["temporal_alignment"],
}


def _rename_all(folder: str, suffix: str, mtime: float) -> None:
    """Rename every sample (json, mp4) to `<stem><suffix>` and stamp it `mtime`, as another system might."""
    import json

    for name in sorted(os.listdir(folder)):
        if name.endswith(".json"):
            stem = name[:-5]
            new = stem.replace("sample", "clip") + suffix
            os.rename(os.path.join(folder, stem + ".mp4"), os.path.join(folder, new + ".mp4"))
            meta = json.load(open(os.path.join(folder, name)))
            meta["video"] = new + ".mp4"
            os.remove(os.path.join(folder, name))
            with open(os.path.join(folder, new + ".json"), "w") as f:
                json.dump(meta, f)
    for name in os.listdir(folder):
        os.utime(os.path.join(folder, name), (mtime, mtime))


# Wall-clock headers (the response time and Cache-Control's max-age added to it): the same for every file
# at a given second, so they are left out of comparisons that would otherwise flake across a second boundary.
_CLOCK_HEADERS = ("Date", "Expires")


def _headers(resp, drop=()) -> dict:
    return {k: v for k, v in resp.headers.items() if k not in _CLOCK_HEADERS + tuple(drop)}


def _media(path: str):
    """[(status, headers, body)] of every (rater, pair, side) of the study at `path`, in a fixed order."""
    client = create_app(path).test_client()
    conn = db.connect(path)
    try:
        out = []
        for rater in db.raters(conn):
            for row in conn.execute(
                "SELECT pair_id FROM assignments WHERE rater_id = ? ORDER BY position", (rater["id"],)
            ):
                for side in ("left", "right"):
                    r = client.get(f"/r/{rater['token']}/media/{row['pair_id']}/{side}.mp4")
                    out.append((r.status_code, _headers(r), r.data))
        return out
    finally:
        conn.close()


def test_media_headers_identical_across_names_and_mtimes(tmp_path):
    """Same videos under different names and mtimes (e.g. `*_16fps.mp4` for F+I): identical responses."""
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        write_samples(str(root / "a"), PROMPTS, (200, 30, 30))
        write_samples(str(root / "b"), PROMPTS, (30, 30, 200))
    _rename_all(str(two / "a"), "_16fps", 1_000_000_000.0)
    _rename_all(str(two / "b"), "", 1_700_000_000.0)
    paths = []
    for root in (one, two):
        paths.append(str(root / "study.db"))
        create_study(paths[-1], str(root / "a"), str(root / "b"), raters_per_pair=2, seed=3)
    first, second = _media(paths[0]), _media(paths[1])
    assert len(first) == 2 * 2 * len(PROMPTS) and all(status == 200 for status, _, _ in first + second)
    for (_, h1, b1), (_, h2, b2) in zip(first, second):
        assert h1 == h2 and b1 == b2
        assert not {"ETag", "Last-Modified", "Content-Disposition"} & set(h1), h1
        assert not any(word in v for v in h1.values() for word in ("sample", "clip", "fps", ".mp4")), h1


def test_study_db_is_private(make_study):
    path, s = make_study()
    client = create_app(path).test_client()
    page = client.get(f"/r/{s.tokens[0]}").text
    assert client.post(f"/r/{s.tokens[0]}/vote", data={**form_fields(page), **GOOD}).status_code == 303
    for f in (path, path + "-wal", path + "-shm"):
        if os.path.exists(f):
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f


def test_csv_cells_cannot_be_formulas(tmp_path, sample_dirs):
    prompts = ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    write_samples(a, prompts, (200, 30, 30))
    write_samples(b, prompts, (30, 30, 200))
    path = str(tmp_path / "s.db")
    s = create_study(path, a, b, raters_per_pair=1)
    client = create_app(path).test_client()
    for _ in prompts:
        page = client.get(f"/r/{s.tokens[0]}").text
        assert client.post(f"/r/{s.tokens[0]}/vote", data={**form_fields(page), **GOOD}).status_code == 303
    write_report(path, str(tmp_path / "out"))
    for name in ("pairs.csv", "votes.csv"):
        with open(tmp_path / "out" / name, newline="", encoding="utf-8") as f:
            cells = [c for row in csv.reader(f) for c in row]
        got = {c for c in cells if c.lstrip("'") in prompts}
        assert got == {"'" + p for p in prompts}, (name, got)
        assert not any(c.startswith(("=", "+", "@")) for c in cells), name


def test_huge_and_negative_pair_ids_are_404(make_study):
    path, s = make_study()
    client = create_app(path).test_client()
    for pid in ("9" * 30, str(2**63), str(2**63 - 1)):
        assert client.get(f"/r/{s.tokens[0]}/media/{pid}/left.mp4").status_code == 404, pid
    page = client.get(f"/r/{s.tokens[0]}").text
    r = client.post(f"/r/{s.tokens[0]}/vote", data={**form_fields(page), **GOOD, "pair_id": "9" * 30})
    assert r.status_code == 400


def test_links_for_a_listen_on_all_host(capsys):
    links = rater_links(["tok"], "0.0.0.0", 8000)
    assert "0.0.0.0" not in links[0] and links[0].endswith(":8000/r/tok")
    assert rater_links(["tok"], "0.0.0.0", 8000, "https://eval.example.org/")[0] == "https://eval.example.org/r/tok"
    assert rater_links(["tok"], "::1", 80)[0] == "http://[::1]:80/r/tok"
    from emu_jax import cli

    assert cli.main(["juice", "serve", "--db", "x.db", "--public-url", "eval.example.org"]) == 2
    assert "--public-url 'eval.example.org'" in capsys.readouterr().err


def _side_markup(page: str) -> dict[str, str]:
    """Each side's `<figure>` with its side name and opaque media URLs masked: what must match across sides."""
    figures = re.findall(r'<figure class="video">.*?</figure>', page, flags=re.S)
    assert len(figures) == 2, page
    out = {}
    for side, fig in zip(("left", "right"), figures):
        assert f'id="video-{side}"' in fig, fig
        fig = re.sub(rf"/r/[^/\"]+/media/\d+/{side}\.(mp4|gif)", r"URL.\1", fig)
        out[side] = fig.replace(side, "SIDE").replace(side.capitalize(), "SIDE")
    return out


def _gif_study(tmp_path, gif_a: bool, gif_b: bool):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    write_samples(a, PROMPTS, (200, 30, 30), gif=gif_a)
    write_samples(b, PROMPTS, (30, 30, 200), nested=True, gif=gif_b)
    path = str(tmp_path / "s.db")
    return path, create_study(path, a, b, raters_per_pair=2, seed=5)


def _pages_and_gifs(path: str, tokens):
    """Per (rater, pair): the masked per-side markup and the two sides' GIF (status, headers)."""
    client = create_app(path).test_client()
    out = []
    for token in tokens:
        for _ in PROMPTS:
            page = client.get(f"/r/{token}").text
            pid = form_fields(page)["pair_id"]
            gifs = {side: client.get(f"/r/{token}/media/{pid}/{side}.gif") for side in ("left", "right")}
            out.append((page, _side_markup(page), gifs))
            assert client.post(f"/r/{token}/vote", data={**form_fields(page), **GOOD}).status_code == 303
    return out


@pytest.mark.parametrize("gif_a, gif_b", [(True, False), (False, True)])
def test_gifs_on_one_side_only_render_both_sides_alike(tmp_path, gif_a, gif_b):
    """Only one system wrote GIFs (e.g. `emu-video sample` does, another sampler does not): no side offers
    or serves a GIF, and both sides' markup is identical but for the opaque media URLs."""
    path, s = _gif_study(tmp_path, gif_a, gif_b)
    seen = _pages_and_gifs(path, s.tokens)
    assert len(seen) == len(s.tokens) * len(PROMPTS)
    for page, markup, gifs in seen:
        assert markup["left"] == markup["right"], markup
        assert "data-gif" not in page and ".gif" not in page
        assert gifs["left"].status_code == gifs["right"].status_code == 404
        assert gifs["left"].data == gifs["right"].data


def test_gifs_on_both_sides_are_offered_alike(tmp_path):
    """Both systems wrote GIFs: both sides offer the fallback, with the same markup and the same headers
    (but Content-Length: sizes are inherent to the bytes)."""
    path, s = _gif_study(tmp_path, True, True)
    for page, markup, gifs in _pages_and_gifs(path, s.tokens):
        assert markup["left"] == markup["right"], markup
        assert 'data-gif="URL.gif"' in markup["left"] and page.count("data-gif=") == 2
        assert gifs["left"].status_code == gifs["right"].status_code == 200
        assert all(g.mimetype == "image/gif" and g.data[:6] == b"GIF89a" for g in gifs.values())
        headers = [_headers(g, drop=("Content-Length",)) for g in gifs.values()]
        assert headers[0] == headers[1], headers
        assert not {"ETag", "Last-Modified", "Content-Disposition"} & set(headers[0]), headers[0]
