"""`edgeface data prepare` on a tiny dataset built from real photos, plus the broken files users have."""

import json
import shutil

import numpy as np
from conftest import DATA, LFW, assert_one_line_error, needs_shared, run_cli

from edgeface.data.prepare import MANIFEST, read_manifest
from edgeface.vision.image import read_image, write_image


def build_dataset(root):
    people = ["Aaron_Peirsol", "Abdullah_Gul"]
    for person in people:
        (root / person).mkdir(parents=True)
        for src in sorted((LFW / person).glob("*.jpg"))[:2]:
            shutil.copy(src, root / person / src.name)
    write_image(root / "Aaron_Peirsol" / "blank.png", np.full((90, 90, 3), 30, np.uint8))
    (root / "Abdullah_Gul" / "empty.jpg").write_bytes(b"")
    shutil.copy(DATA / "media" / "probes" / "two_people.jpg", root / "Abdullah_Gul" / "two.jpg")
    return people


@needs_shared
def test_prepare_counts_every_outcome_and_resumes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    build_dataset(src)
    result = run_cli("data", "prepare", str(src), str(dst), "--json", "--workers", "2")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["sources"] == 7
    assert summary["ok"] == 5 and summary["no_face"] == 1 and summary["unreadable"] == 1
    assert summary["several_faces"] >= 1
    records = read_manifest(dst)
    ok = [r for r in records if r["status"] == "ok"]
    for rec in ok:
        crop = read_image(dst / rec["file"])
        assert crop.shape == (112, 112, 3)
        assert rec["identity"] in ("Aaron_Peirsol", "Abdullah_Gul")
    # resume: nothing is redone, a truncated last line is ignored and redone
    lines = (dst / MANIFEST).read_text().splitlines()
    (dst / MANIFEST).write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])
    again = json.loads(run_cli("data", "prepare", str(src), str(dst), "--json").stdout)
    assert again["skipped_already_prepared"] == 6
    assert sum(v for k, v in again.items() if k in ("ok", "no_face", "unreadable")) == 1


@needs_shared
def test_celeba_list_and_exclusion(tmp_path):
    listing = tmp_path / "ids.txt"
    names = sorted((DATA / "celeba-subset" / "images").glob("*.jpg"))[:3]
    listing.write_text("".join(f"{p.name} {i % 2}\n" for i, p in enumerate(names)))
    result = run_cli("data", "prepare", str(DATA / "celeba-subset"), str(tmp_path / "out"), "--identities",
                     str(listing), "--prefix", "c_", "--json", "--workers", "1")
    assert result.returncode == 0, result.stderr
    ids = {r["identity"] for r in read_manifest(tmp_path / "out")}
    assert ids == {"c_0", "c_1"}


def test_prepare_bad_input(tmp_path):
    assert_one_line_error(run_cli("data", "prepare", str(tmp_path / "missing"), str(tmp_path / "o")), "not found")
    (tmp_path / "emptydir").mkdir()
    assert_one_line_error(run_cli("data", "prepare", str(tmp_path / "emptydir"), str(tmp_path / "o")), "no images")
