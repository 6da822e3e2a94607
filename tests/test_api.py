"""The public Python API and the verify / detect commands, on real photos, without TensorFlow."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BLOCK_TF, MEDIA, ROOT, assert_one_line_error, needs_shared, run_cli

pytestmark = needs_shared
OBAMA = MEDIA / "gallery" / "obama" / "obama.jpg"
BIDEN = MEDIA / "gallery" / "biden" / "biden.jpg"
TWO = MEDIA / "probes" / "two_people.jpg"


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "the README's Python API example is missing"
    return block.group(1)


def test_the_readme_example_runs_as_written_with_tensorflow_blocked(tmp_path: Path):
    """The five lines a new user copies: enrol a photo, ask who is in another one."""
    shutil.copyfile(OBAMA, tmp_path / "obama.jpg")
    shutil.copyfile(TWO, tmp_path / "two_people.jpg")
    code = BLOCK_TF + readme_example() + "\nassert not any(m.startswith('tensorflow') for m in sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "obama" in done.stdout


def test_the_readme_example_with_a_missing_photo_ends_in_one_line(tmp_path: Path):
    """The same five lines without obama.jpg: exit 1 and one line naming the photo and why, not 'None 0.0'."""
    shutil.copyfile(TWO, tmp_path / "two_people.jpg")
    done = subprocess.run([sys.executable, "-c", BLOCK_TF + readme_example()], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "Traceback" not in done.stderr
    assert "nothing enrolled for 'obama': obama.jpg: image not found" in done.stderr


def test_load_detect_embed_verify():
    import edgeface

    fr = edgeface.load()
    faces = fr.detect(TWO)
    assert len(faces) == 2 and all(f.detection > 0.8 and len(f.box) == 4 for f in faces)
    assert faces[0].top_right_bottom_left[0] < faces[0].top_right_bottom_left[2]
    vec = fr.embed(OBAMA)
    assert vec.shape == (fr.embedder.size,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4
    assert fr.embed(TWO, all_faces=True).shape == (2, fr.embedder.size)
    import cv2

    bgr = cv2.imread(str(OBAMA))
    assert np.allclose(fr.embed(bgr, bgr=True), vec, atol=1e-5)  # an OpenCV frame gives the same answer
    aligned = fr.align(OBAMA)
    assert aligned.shape == (150, 150, 3)  # the shipped model sees dlib's chip (yunet-dlib150)
    with pytest.raises(edgeface.EdgefaceError, match="150x150"):
        fr.embed(aligned[:112, :112], aligned=True)
    assert float(np.dot(fr.embed(aligned, aligned=True), vec)) > 0.999  # an aligned crop is embedded as it is
    same = fr.verify(OBAMA, MEDIA / "probes" / "obama3.jpg")
    other = fr.verify(OBAMA, BIDEN)
    assert same["same"] and not other["same"] and same["score"] > other["score"]
    assert set(same) == {"same", "score", "threshold", "faces", "boxes"} and same["faces"] == [1, 1]


def test_verify_says_how_many_faces_and_which_were_compared():
    """A group photo is never silently reduced to its largest face: the result counts the faces and names the
    boxes compared; all_faces finds the person anywhere in the other photo."""
    import cv2

    import edgeface

    fr = edgeface.load()
    main = fr.verify(OBAMA, TWO)
    assert main["faces"] == [1, 2] and not main["same"]  # Biden's face is the larger, more central one
    anywhere = fr.verify(OBAMA, TWO, all_faces=True)
    assert anywhere["same"] and anywhere["score"] > main["score"] and anywhere["boxes"][1] != main["boxes"][1]
    # an OpenCV frame with bgr=True is the same image
    bgr = cv2.imread(str(OBAMA))
    # (the first image is taken as the enrolled template, flip-averaged, the second as a one-pass frame)
    assert abs(fr.verify(bgr, OBAMA, bgr=True)["score"] - fr.verify(OBAMA, OBAMA)["score"]) < 1e-4
    assert fr.verify(bgr, OBAMA)["score"] < fr.verify(bgr, OBAMA, bgr=True)["score"]


def test_embed_at_given_boxes_or_landmarks_and_compare():
    """face_recognition's known_face_locations: boxes from another detector (here: YuNet's own, shifted and
    loosened as another detector would draw them) give the embeddings of those faces."""
    import edgeface

    fr = edgeface.load()
    faces = fr.detect(TWO)
    every = fr.embed(TWO, all_faces=True)
    loose = [[b[0] - 8, b[1] - 15, b[2] + 6, b[3] + 10] for b in (f.box for f in faces)]
    at_boxes = fr.embed(TWO, boxes=loose)
    assert at_boxes.shape == every.shape and np.all(np.sum(at_boxes * every, axis=1) > 0.99)
    at_points = fr.embed(TWO, landmarks=[f.landmarks for f in faces])
    assert np.all(np.sum(at_points * every, axis=1) > 0.999)
    with pytest.raises(edgeface.EdgefaceError, match="no face found at box"):
        fr.embed(TWO, boxes=[[0, 400, 60, 460]])
    with pytest.raises(edgeface.EdgefaceError, match="not an x0, y0, x1, y1 box"):
        fr.embed(TWO, boxes=[[50, 50, 10, 10]])
    with pytest.raises(edgeface.EdgefaceError, match="landmarks must be"):
        fr.embed(TWO, landmarks=[[1, 2, 3]])
    obama = fr.embed(OBAMA)
    scores = edgeface.similarity(every, obama)
    assert scores.shape == (2,) and fr.compare(every, obama).tolist() == (scores >= fr.threshold).tolist()
    assert fr.compare(every, obama).sum() == 1
    with pytest.raises(edgeface.EdgefaceError, match="shapes"):
        edgeface.similarity(every, obama[:10])


def test_gallery_enroll_identify_remove(tmp_path: Path):
    import edgeface

    with edgeface.Gallery(tmp_path / "people.sqlite") as people:
        result = people.enroll("obama", OBAMA)
        assert result["accepted"] == [str(OBAMA)] and result["templates"] == 1
        assert people.enroll("obama", OBAMA)["skipped"]  # the same photo twice is not two templates
        # the same photo under another name is refused naming its holder, even for a declared new person
        with pytest.raises(edgeface.EdgefaceError, match="already enrolled as obama"):
            people.enroll("someone", OBAMA, new_person=True)
        people.enroll("biden", BIDEN)
        found = {r["name"] for r in people.identify(TWO)}
        assert found == {"obama", "biden"}
        people.remove("biden")
        assert {r["name"] for r in people.identify(TWO)} == {"obama", None}
        assert [p["name"] for p in people.people()] == ["obama"]


def test_the_api_and_the_cli_report_the_same_faces_field_for_field(tmp_path: Path):
    """One frame recogniser decides for both: every demo probe (a group photo, a partial face, a small one) gives
    the CLI's --json records and Gallery.identify's alike."""
    import edgeface

    gallery = tmp_path / "people.sqlite"
    assert run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery)).returncode == 0
    probes = sorted((MEDIA / "probes").glob("*.jpg"))
    with edgeface.Gallery(gallery) as people:
        from_api = {p.name: people.identify(p) for p in probes}
    result = run_cli("recognize", "--source", str(MEDIA / "probes"), "--gallery", str(gallery), "--json")
    assert result.returncode == 0, result.stderr
    from_cli: dict[str, list] = {p.name: [] for p in probes}
    for line in result.stdout.splitlines():
        row = json.loads(line)
        if "box" in row:
            from_cli[Path(row.pop("source")).name].append(row)
            del row["time"], row["frame"]
    for rows in (*from_api.values(), *from_cli.values()):
        for row in rows:
            row["track"] = None  # numbered per process: the API's gallery and the CLI's run count apart
    assert from_api == from_cli
    names = {row["name"] for rows in from_api.values() for row in rows}
    assert names == {"obama", "biden"}  # every probe face is one of them (strangers: the test above)


def test_the_api_and_the_cli_report_the_same_video_frames_field_for_field(tmp_path: Path):
    """The same for video: the first 60 frames of the clip (a cut at frame 20), through the API's frame recogniser
    and through `edgeface recognize --json`, tracks included, face for face."""
    import cv2

    import edgeface

    clip = MEDIA / "short_hamilton_clip.mp4"
    gallery = tmp_path / "people.sqlite"
    assert run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery)).returncode == 0
    result = run_cli("recognize", "--source", str(clip), "--gallery", str(gallery), "--max-frames", "60", "--json")
    assert result.returncode == 0, result.stderr
    from_cli = [json.loads(line) for line in result.stdout.splitlines()[:-1]]
    for row in from_cli:
        del row["time"], row["source"]
    from_api = []
    cap = cv2.VideoCapture(str(clip))
    with edgeface.Gallery(gallery, read_only=True) as people:
        frames = people.recognizer.frames(people.store)
        for index in range(60):
            ok, frame = cap.read()
            assert ok
            from_api += [{"frame": index, **face.to_dict()} for face in frames.process(frame)]
    cap.release()
    assert len(from_cli) > 60 and from_api == from_cli


def test_gallery_enroll_fails_loudly_and_takes_lists_folders_and_frames(tmp_path: Path):
    """A failed enrolment is an error naming each photo and its reason, never a quiet zero templates."""
    import cv2

    import edgeface

    with edgeface.Gallery(tmp_path / "people.sqlite") as people:
        with pytest.raises(edgeface.EdgefaceError, match=r"nothing enrolled for 'obama': .*missing\.jpg: image not"):
            people.enroll("obama", tmp_path / "missing.jpg")
        with pytest.raises(edgeface.EdgefaceError, match="2 faces found"):
            people.enroll("obama", TWO)
        assert people.people() == []
        listed = people.enroll("obama", [OBAMA, MEDIA / "gallery" / "obama" / "obama2.jpg"])
        assert len(listed["accepted"]) == 2
        frame = people.enroll("biden", cv2.imread(str(BIDEN)), bgr=True)
        assert frame["templates"] == 1 and {r["name"] for r in people.identify(TWO)} == {"obama", "biden"}
    with edgeface.Gallery(tmp_path / "folders.sqlite") as people:
        assert people.enroll("kit", MEDIA / "gallery" / "kit_harington")["templates"] >= 1  # a folder of photos
        results = people.enroll_folder(MEDIA / "gallery")
        assert set(results) == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
        refused = results["kit_harington"]["rejected"]  # the same photos, enrolled above as "kit": not a second person
        assert refused and all("already enrolled as kit" in why for why in refused.values()), refused


def test_api_errors_are_edgeface_errors(tmp_path: Path):
    import edgeface

    fr = edgeface.load()
    with pytest.raises(edgeface.EdgefaceError, match="no face"):
        fr.embed(np.full((200, 200, 3), 128, np.uint8))
    with pytest.raises(edgeface.EdgefaceError, match="uint8"):
        fr.detect(np.zeros((10, 10), np.float32))
    with pytest.raises(edgeface.EdgefaceError, match="not found"):
        fr.detect(tmp_path / "missing.jpg")


def test_verify_command_exit_codes():
    same = run_cli("verify", str(OBAMA), str(MEDIA / "probes" / "obama3.jpg"), "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["same"] is True
    different = run_cli("verify", str(OBAMA), str(BIDEN), "--json")
    assert different.returncode == 1 and json.loads(different.stdout)["same"] is False
    assert_one_line_error(run_cli("verify", str(OBAMA), str(MEDIA / "nope.jpg")), "not found")


def test_detect_command_table_json_and_face_recognition_csv(tmp_path: Path):
    result = run_cli("detect", str(MEDIA / "probes"), "--csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "file,top,right,bottom,left"
    rows = [line.split(",") for line in lines[1:]]
    assert sum(Path(r[0]).name == "two_people.jpg" for r in rows) == 2
    for _, top, right, bottom, left in rows:
        assert int(top) < int(bottom) and int(left) < int(right)
    doc = json.loads(run_cli("detect", str(TWO), "--json").stdout)
    assert len(doc["faces"]) == 2 and {"box", "landmarks", "score", "file"} <= set(doc["faces"][0])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(run_cli("detect", str(empty)), "no images")
