"""The output folder rules without a model: atomic records, resume, refusal, --overwrite."""

import json
import os

import pytest

from emu_jax.errors import UserError
from emu_jax.sampling import outputs

IDENTITY = {"checkpoint_id": "abc", "settings": {"num_steps": 2}, "seed": 0, "prompts_sha256": "p1"}
ITEMS = [
    {"index": i, "prompt": p, "seed": 0, "stem": outputs.stem(i, p), "warnings": []}
    for i, p in enumerate(["red circle", "blue square"])
]


def _finish(out, item, identity=IDENTITY):
    """What write_sample leaves for an item: its files, then its record."""
    (out / f"{item['stem']}_keyframe.png").write_bytes(b"png")
    outputs.write_json(
        str(out / f"{item['stem']}.json"),
        {"run_id": outputs.run_id(identity), "files": {"keyframe": f"{item['stem']}_keyframe.png"}},
    )


def test_resume_refuse_and_overwrite(tmp_path):
    out, stems = tmp_path, [it["stem"] for it in ITEMS]
    assert outputs.check_folder(str(out), IDENTITY, stems, overwrite=False) == []
    outputs.prepare_folder(str(out), [])
    (out / ".tmp-99-leftover.mp4").write_bytes(b"half")  # a killed writer's temporary
    _finish(out, ITEMS[0])
    outputs.write_manifest(str(out), IDENTITY, ITEMS, [0])
    rid = outputs.run_id(IDENTITY)
    assert outputs.item_done(str(out), stems[0], rid) and not outputs.item_done(str(out), stems[1], rid)
    os.remove(out / f"{stems[0]}_keyframe.png")  # a record whose file is gone is not done
    assert not outputs.item_done(str(out), stems[0], rid)
    _finish(out, ITEMS[0])
    # The same command resumes; temporaries go.
    assert outputs.check_folder(str(out), IDENTITY, stems, overwrite=False) == []
    outputs.prepare_folder(str(out), [])
    assert not (out / ".tmp-99-leftover.mp4").exists()
    # Another command: refused, naming what differs, folder untouched.
    other = {**IDENTITY, "seed": 1}
    before = sorted(os.listdir(out))
    with pytest.raises(UserError, match="different seed.*--overwrite"):
        outputs.check_folder(str(out), other, stems, overwrite=False)
    assert sorted(os.listdir(out)) == before
    # --overwrite removes the other run's items and manifest.
    remove = outputs.check_folder(str(out), other, stems, overwrite=True)
    outputs.prepare_folder(str(out), remove)
    assert os.listdir(out) == []


def test_outputs_without_manifest_are_not_overwritten(tmp_path):
    (tmp_path / f"{ITEMS[1]['stem']}.json").write_text(json.dumps({"prompt": "old"}))
    with pytest.raises(UserError, match="already has outputs"):
        outputs.check_folder(str(tmp_path), IDENTITY, [it["stem"] for it in ITEMS], overwrite=False)
    # this run's own record, written before its manifest (killed early), is not a clash
    _finish(tmp_path, ITEMS[0])
    os.remove(tmp_path / f"{ITEMS[1]['stem']}.json")
    assert outputs.check_folder(str(tmp_path), IDENTITY, [it["stem"] for it in ITEMS], overwrite=False) == []
