"""Enrolment, gallery and the recognition loop on the shared media set, without TensorFlow."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    MEDIA,
    PEER_FLAGS,
    PEER_FLOAT,
    PROFILE_FRAME,
    assert_one_line_error,
    clip_frame,
    needs_shared,
    run_cli,
)

from edgeface.errors import EdgefaceError
from edgeface.recognize.gallery import Gallery, check_name
from edgeface.vision.embed import l2_normalise

pytestmark = needs_shared
PROBES = MEDIA / "probes"
CLIP = MEDIA / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five people of media/gallery enrolled with the shipped default model."""
    gallery = tmp_path_factory.mktemp("g") / "gallery.sqlite"
    result = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery), "--json")
    assert result.returncode == 0, result.stderr
    people = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(people) == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
    assert all(r["accepted"] for r in people.values())
    return gallery


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The five people enrolled with the float MobileFaceNet peer, matched at its LFW FAR 1e-3 threshold
    (measured by benchmarks/archive/peers_lfw.py): a model strong enough to show what the loop does when embeddings are
    as discriminative as the acceptance case needs."""
    results = json.loads((Path(__file__).parents[1] / "benchmarks" / "results" / "peers_lfw.json").read_text())
    threshold = next(r for r in results["results"] if r["model"] == PEER_FLOAT.name)["threshold_at_far"]["0.001"]
    gallery = tmp_path_factory.mktemp("peer") / "gallery.sqlite"
    model = ["--model", str(PEER_FLOAT), *PEER_FLAGS]
    result = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery), *model)
    assert result.returncode == 0, result.stderr
    return gallery, [*model, "--threshold", str(threshold)]


def recognize(gallery: Path, source: Path, *extra: str) -> tuple[list[dict], dict]:
    result = run_cli("recognize", "--source", str(source), "--gallery", str(gallery), "--json", *extra)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]  # every line is valid JSON
    return [e for e in lines if "summary" not in e], lines[-1]["summary"]


def test_gallery_file_is_private_wal_and_versioned(enrolled):
    assert stat.S_IMODE(os.stat(enrolled).st_mode) == 0o600
    db = sqlite3.connect(enrolled)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "2"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_probes_are_recognised_with_a_strong_model(peer):
    gallery, options = peer
    events, _ = recognize(gallery, PROBES / "obama3.jpg", *options)
    assert [e["name"] for e in events] == ["obama"]
    events, _ = recognize(gallery, PROBES / "two_people.jpg", *options)
    assert sorted(e["name"] for e in events) == ["biden", "obama"]
    events, _ = recognize(gallery, CLIP, *options)
    only_obama_in_the_audience(events)


def test_default_model_at_its_calibrated_threshold(enrolled):
    """The acceptance case with the shipped int8 model at its own LFW FAR 1e-3 threshold (from its manifest)."""
    events, _ = recognize(enrolled, PROBES / "obama3.jpg")
    assert [e["name"] for e in events] == ["obama"]
    events, _ = recognize(enrolled, PROBES / "two_people.jpg")
    assert sorted(e["name"] for e in events) == ["biden", "obama"]
    events, _ = recognize(enrolled, PROBES / "obama-480p.jpg")
    assert [e["name"] for e in events] == ["obama"]


def only_obama_in_the_audience(events: list[dict]) -> None:
    """The clip's strangers are never named; Barack Obama sits in the audience from frame 211 (three-quarter to
    profile), the only enrolled person in it, and only there may he be named."""
    named = [e for e in events if e["name"] is not None]
    assert {e["name"] for e in named} <= {"obama"} and all(e["frame"] >= 211 for e in named), named


def test_video_of_strangers_names_nobody_wrongly_and_writes_annotated_video(enrolled, tmp_path):
    out = tmp_path / "annotated.mp4"
    events, summary = recognize(enrolled, CLIP, "--output", str(out))
    assert summary["frames"] == 275 and summary["faces"] > 100
    only_obama_in_the_audience(events)
    # profiles are not matched by default; matched anyway, still nobody is named wrongly
    every, _ = recognize(enrolled, CLIP, "--max-turn", "100")
    embedded = [e for e in every if e["score"] is not None]
    assert len(embedded) > sum(e["score"] is not None for e in events)
    only_obama_in_the_audience(every)
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 275
    cap.release()
    assert not list(tmp_path.glob(".*partial*"))


def test_key_frames_follow_the_faces_between_detections(enrolled):
    """--detect-every 4 on the clip: three frames in four follow the faces already known instead of detecting the
    whole frame and embedding. The faces followed are where full detection finds them (box overlap), few are
    missed or invented, and still nobody is named wrongly."""
    from edgeface.vision.face import iou

    full, _ = recognize(enrolled, CLIP)
    keyed, summary = recognize(enrolled, CLIP, "--detect-every", "4")
    assert summary["frames"] == 275 and "follow" in summary["stages"]
    only_obama_in_the_audience(keyed)

    def by_frame(events: list[dict]) -> dict[int, np.ndarray]:
        boxes: dict[int, list] = {}
        for e in events:
            boxes.setdefault(e["frame"], []).append(e["box"])
        return {k: np.array(v) for k, v in boxes.items()}

    truth, found = by_frame(full), by_frame(keyed)
    hits = sum(int(k in found and iou(box, found[k]).max() >= 0.5) for k, boxes in truth.items() for box in boxes)
    extra = sum(int(k not in truth or iou(box, truth[k]).max() < 0.5) for k, boxes in found.items() for box in boxes)
    assert hits >= 0.9 * len(full), (hits, len(full))
    assert extra <= 0.05 * len(keyed), (extra, len(keyed))


def clip_frames(first: int, last: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    cap.set(cv2.CAP_PROP_POS_FRAMES, first)
    frames = [cap.read()[1] for _ in range(first, last + 1)]
    cap.release()
    assert all(f is not None for f in frames)
    return frames


def test_a_dim_face_on_its_track_is_kept_where_detection_misses_it(enrolled):
    """Frames 236-254 of the clip: an audience face at the top left scores 0.34-0.85, and whole-frame detection
    alone loses it in four of those frames. Every frame is still a key frame (--detect-every 1), but the tracked face
    the detection misses is followed where it was: it is there in every frame, on one track. (The face is too dark
    for the default model's light gates, which report it so and never name it: the tracking is checked without
    them, the gates' verdict with them.)"""
    import edgeface

    with edgeface.Gallery(enrolled, read_only=True, light_gates=False) as gallery:
        frames = gallery.recognizer.frames(gallery.store)
        tracks = []
        for frame in clip_frames(236, 254):
            corner = [r for r in frames.process(frame) if r.box[0] < 60 and r.box[1] < 40]
            tracks.append([r.track for r in corner])
    assert all(len(t) == 1 for t in tracks) and len({t[0] for t in tracks}) == 1, tracks
    with edgeface.Gallery(enrolled, read_only=True) as gallery:
        frames = gallery.recognizer.frames(gallery.store)
        verdicts = {r.reason for frame in clip_frames(236, 240) for r in frames.process(frame)
                    if r.box[0] < 60 and r.box[1] < 40}
    assert verdicts == {"too dark"} and frames.gates.min_brightness is not None, verdicts


def test_a_cut_in_the_video_makes_a_key_frame(enrolled):
    """The clip cuts to the audience at frame 211. With --detect-every 8 the cut frame is a key frame whatever its
    place in the count: it finds the six faces whole-frame detection finds there, at the same boxes, not the stage's
    faces followed into a picture that no longer has them. The frame after the cut is a key frame too (the same
    faces whole-frame detection finds; an uncertain one on a face found at the cut is followed there, so its box
    may differ a little), and the one after that is followed again."""
    import edgeface
    from edgeface.vision.face import iou

    with edgeface.Gallery(enrolled, read_only=True) as gallery:
        every = gallery.recognizer.frames(gallery.store)
        keyed = gallery.recognizer.frames(gallery.store, detect_every=8)
        seen = [(every.process(frame), keyed.process(frame)) for frame in clip_frames(205, 213)]
    cut, after, later = seen[-3:]  # the cut is the 7th frame: no count of 8 lands on it
    assert len(cut[0]) == 6
    assert sorted(r.box for r in cut[1]) == sorted(r.box for r in cut[0])
    full, found = (np.array([r.box for r in faces], np.float32) for faces in after)
    assert len(found) == len(full) and all(iou(box, found).max() >= 0.5 for box in full)
    assert sorted(r.box for r in later[1]) != sorted(r.box for r in later[0])


def test_max_frames_and_profile(enrolled):
    _, summary = recognize(enrolled, CLIP, "--max-frames", "120")
    assert summary["frames"] == 120
    result = run_cli("recognize", "--source", str(CLIP), "--gallery", str(enrolled), "--max-frames", "30",
                     "--profile")
    assert result.returncode == 0, result.stderr
    assert "embed" in result.stdout and "detect" in result.stdout


def test_corrupt_images_do_not_end_the_loop(enrolled, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((PROBES / "obama3.jpg").read_bytes())
    (folder / "b.jpg").write_bytes(b"\xff\xd8garbage")
    (folder / "c.jpg").write_bytes((PROBES / "two_people.jpg").read_bytes()[:5000])
    (folder / "d.jpg").write_bytes((PROBES / "obama-480p.jpg").read_bytes())
    result = run_cli("recognize", "--source", str(folder), "--gallery", str(enrolled), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(ln) for ln in result.stdout.splitlines()]
    errors = [e for e in lines if "error" in e]
    assert len(errors) >= 1
    assert lines[-1]["summary"]["frames"] + lines[-1]["summary"]["unreadable_frames"] == 4
    assert [e["name"] for e in lines if e.get("frame") == 3 and "name" in e] == ["obama"]  # obama-480p.jpg


def test_enrolment_rejects_bad_photos_with_reasons(tmp_path):
    gallery = tmp_path / "g.sqlite"
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 120, np.uint8))
    blurred = tmp_path / "blurred.jpg"
    image = cv2.imread(str(PROBES / "obama-480p.jpg"))
    cv2.imwrite(str(blurred), cv2.GaussianBlur(image, (0, 0), 4))
    result = run_cli("enroll", "someone", str(blank), str(PROBES / "two_people.jpg"), str(blurred),
                     str(tmp_path / "missing.jpg"), "--gallery", str(gallery), "--json")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    report = json.loads(result.stdout)[0]
    reasons = report["rejected"]
    assert "no face" in reasons[str(blank)]
    assert "2 faces" in reasons[str(PROBES / "two_people.jpg")]
    assert "blurred" in reasons[str(blurred)]
    assert str(tmp_path / "missing.jpg") in reasons


def test_profiles_are_refused_for_enrolment_and_not_matched(enrolled, tmp_path):
    frame = clip_frame(PROFILE_FRAME)
    profile = tmp_path / "profile.png"
    cv2.imwrite(str(profile), cv2.resize(frame[20:200, 270:420], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    result = run_cli("enroll", "someone", str(profile), "--gallery", str(tmp_path / "g.sqlite"), "--json")
    assert "turned away" in json.loads(result.stdout)[0]["rejected"][str(profile)]
    events, _ = recognize(enrolled, profile)
    assert [(e["name"], e["score"], e["reason"]) for e in events] == [(None, None, "turned away")]
    events, _ = recognize(enrolled, profile, "--max-turn", "100", "--threshold", "0.01",  # gates off: matched
                          "--no-light-gates")
    assert events[0]["score"] is not None and events[0]["name"] is not None


def test_gallery_manage_export_import_round_trip(enrolled, tmp_path):
    copy = tmp_path / "copy.sqlite"
    copy.write_bytes(enrolled.read_bytes())
    assert run_cli("gallery", "rename", "kit_harington", "Kit H.", "--gallery", str(copy)).returncode == 0
    assert run_cli("gallery", "remove", "rose_leslie", "--gallery", str(copy)).returncode == 0
    exported = tmp_path / "g.npz"
    assert run_cli("gallery", "export", str(exported), "--gallery", str(copy)).returncode == 0
    assert stat.S_IMODE(os.stat(exported).st_mode) == 0o600
    with np.load(exported, allow_pickle=False) as data:
        assert "Kit H." in data["names"].tolist() and "rose_leslie" not in data["names"].tolist()
    fresh = tmp_path / "fresh.sqlite"
    assert run_cli("gallery", "import", str(exported), "--gallery", str(fresh)).returncode == 0
    listing = json.loads(run_cli("gallery", "list", "--gallery", str(fresh), "--json").stdout)
    assert sorted(p["name"] for p in listing["people"]) == ["Kit H.", "alex_lacamoire", "biden", "obama"]


@pytest.mark.parametrize("name, needle", [
    ("../etc/passwd", "not allowed"), ("a/b", "not allowed"), ("bell\x07", "not allowed"), ("x" * 10_000, "limit"),
    ("   ", "empty"), ("unknown", "reserved"), ("Unknown", "reserved"),
])
def test_bad_names_are_refused(name, needle):
    with pytest.raises(EdgefaceError, match=needle):
        check_name(name)


def test_gallery_refuses_another_model(tmp_path):
    path = tmp_path / "g.sqlite"
    Gallery(path, "a" * 64, 128).add("x", l2_normalise(np.ones((1, 128))))
    with pytest.raises(EdgefaceError, match=r"enrolled with model \(aaaaaaaaaaaa, 128-d\), not with this model \(bbbb"):
        Gallery(path, "b" * 64, 128)
    with pytest.raises(EdgefaceError, match="enrolled with model"):
        Gallery(path, "a" * 64, 64)


def test_gallery_upgrade_moves_a_gallery_to_another_model_without_the_photos(peer, tmp_path):
    """Enrolled with the peer MobileFaceNet; `gallery upgrade` re-embeds the faces the gallery kept with the shipped
    model, which then names the same people; the photos are not needed, the old model no longer opens it."""
    gallery, options = peer
    moved = tmp_path / "moved.sqlite"
    moved.write_bytes(gallery.read_bytes())
    kept = sqlite3.connect(moved).execute("SELECT COUNT(*), COUNT(face), MAX(length(face)) FROM templates").fetchone()
    assert kept[0] == kept[1] >= 5 and kept[2] < 120_000  # every template keeps its face, a small JPEG
    result = run_cli("gallery", "upgrade", "--gallery", str(moved), "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["upgraded"] and done["templates"] == kept[0] and done["people"] == 5
    assert done["found_again"] == 0  # both models align from YuNet's points: the stored ones, found on the photo
    events, _ = recognize(moved, PROBES / "obama3.jpg")
    assert [e["name"] for e in events] == ["obama"]
    events, _ = recognize(moved, PROBES / "two_people.jpg")
    assert sorted(e["name"] for e in events) == ["biden", "obama"]
    again = json.loads(run_cli("gallery", "upgrade", "--gallery", str(moved), "--json").stdout)
    assert not again["upgraded"]  # already there: nothing rewritten
    assert_one_line_error(run_cli("recognize", "--source", str(PROBES / "obama3.jpg"), "--gallery", str(moved),
                                  *options), "gallery upgrade")


def test_a_gallery_of_an_earlier_default_keeps_its_model_under_the_name_it_ships_as_now(tmp_path):
    """A gallery enrolled before the default changed remembers "default" and the earlier default's identity. That
    model still ships (dlib's own weights, now ``port``), so the gallery is opened with it, unchanged, and names the
    same people; asked for the new default, the refusal names the model to use or the upgrade; ``gallery upgrade``
    then moves it, and the new default names them."""
    gallery = tmp_path / "old.sqlite"
    done = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery), "--model", "port", "--json")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(gallery) as db:  # what the earlier release wrote: the model by the name it had then
        db.execute("UPDATE meta SET value='default' WHERE key='model'")
    probe = ["--source", str(PROBES / "two_people.jpg"), "--gallery", str(gallery)]
    events, _ = recognize(gallery, PROBES / "two_people.jpg")
    assert sorted(e["name"] for e in events) == ["biden", "obama"]
    assert_one_line_error(run_cli("recognize", *probe, "--model", "default"), "--model port", "gallery upgrade")
    assert json.loads(run_cli("gallery", "upgrade", "--gallery", str(gallery), "--json").stdout)["upgraded"]
    events, _ = recognize(gallery, PROBES / "two_people.jpg", "--model", "default")
    assert sorted(e["name"] for e in events) == ["biden", "obama"]
    assert_one_line_error(run_cli("recognize", *probe, "--model", "port"), "gallery upgrade")


def test_gallery_upgrade_finds_faces_again_for_a_model_on_other_landmarks(peer, tmp_path):
    """A model aligned on BlazeFace's landmarks cannot use the stored YuNet points: each kept face is detected
    again on its crop, and the moved gallery still names the probes."""
    import shutil

    from edgeface.default_model import resolve_model
    from edgeface.manifest import load_manifest, save_manifest

    gallery, _ = peer
    moved = tmp_path / "moved.sqlite"
    moved.write_bytes(gallery.read_bytes())
    blaze = tmp_path / "blaze.tflite"
    shutil.copyfile(resolve_model("small"), blaze)
    manifest = load_manifest(blaze)
    manifest.alignment = "blazeface-4pt"
    save_manifest(blaze, manifest)
    result = run_cli("gallery", "upgrade", "--gallery", str(moved), "--model", str(blaze), "--json")
    assert result.returncode == 0, result.stderr
    done = json.loads(result.stdout)
    assert done["upgraded"] and done["found_again"] == done["templates"] >= 5
    events, _ = recognize(moved, PROBES / "two_people.jpg", "--model", str(blaze))
    assert sorted(e["name"] for e in events) == ["biden", "obama"]


def test_gallery_upgrade_names_who_to_enrol_again_and_changes_nothing(tmp_path):
    """A gallery made before faces were kept (schema 1) opens, migrates, and its upgrade is refused with the names of
    the people to enrol again; with --no-store-faces the same; the gallery still works with its model after."""
    old = tmp_path / "v1.sqlite"
    db = sqlite3.connect(old)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, created REAL NOT NULL);
        CREATE TABLE templates (id INTEGER PRIMARY KEY, person_id INTEGER NOT NULL REFERENCES people(id)
            ON DELETE CASCADE, embedding BLOB NOT NULL, image_sha256 TEXT, quality REAL, created REAL NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1'), ('model_sha256', '%s'), ('embedding_size', '4');
        INSERT INTO people VALUES (1, 'ada', 0);
    """ % ("c" * 64))
    db.execute("INSERT INTO templates VALUES (1, 1, ?, NULL, NULL, 0)", (l2_normalise(np.ones(4)).tobytes(),))
    db.commit()
    db.close()
    result = run_cli("gallery", "upgrade", "--gallery", str(old))
    assert_one_line_error(result, "ada", "enrol")
    store = Gallery(old, "c" * 64, 4)
    assert store.meta("schema_version") == "2" and store.meta("model_sha256") == "c" * 64
    assert store.match(l2_normalise(np.ones((1, 4))), 0.5)[0].name == "ada"
    private = tmp_path / "private.sqlite"
    result = run_cli("enroll", "obama", str(MEDIA / "gallery" / "obama" / "obama.jpg"), "--gallery", str(private),
                     "--no-store-faces", "--model", str(PEER_FLOAT), *PEER_FLAGS)
    assert result.returncode == 0, result.stderr
    assert sqlite3.connect(private).execute("SELECT COUNT(face) FROM templates").fetchone()[0] == 0
    before = Gallery(private, create=False)
    sha, templates = before.meta("model_sha256"), before.templates()[0].copy()
    before.close()
    assert_one_line_error(run_cli("gallery", "upgrade", "--gallery", str(private)), "obama", "enrol")
    after = Gallery(private, create=False)
    assert after.meta("model_sha256") == sha and np.array_equal(after.templates()[0], templates)


def test_interrupted_enrolment_leaves_the_gallery_consistent(tmp_path):
    path = tmp_path / "g.sqlite"
    gallery = Gallery(path, "c" * 64, 4)
    gallery.add("first", l2_normalise(np.ones((2, 4))))
    with pytest.raises(RuntimeError), gallery.transaction() as db:
        db.execute("INSERT INTO people (name, created) VALUES ('half', 0)")
        raise RuntimeError("crash mid-enrolment")
    assert [p["name"] for p in gallery.people()] == ["first"]
    # a process killed in the middle of a transaction: nothing of it survives, the file stays sound
    code = f"""
import os, numpy as np
from edgeface.recognize.gallery import Gallery
g = Gallery({str(path)!r}, {"c" * 64!r}, 4)
g.db.execute("BEGIN IMMEDIATE")
g.db.execute("INSERT INTO people (name, created) VALUES ('ghost', 0)")
os._exit(9)
"""
    assert subprocess.run([sys.executable, "-c", code]).returncode == 9
    again = Gallery(path, "c" * 64, 4)
    assert [p["name"] for p in again.people()] == ["first"]
    assert again.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_concurrent_enrolment_while_recognising(tmp_path):
    """Two processes enrol for a bounded time while this one matches: no lost or corrupt rows."""
    path = tmp_path / "g.sqlite"
    Gallery(path, "d" * 64, 8).add("seed", l2_normalise(np.ones((1, 8))))
    writer = f"""
import numpy as np, sys
from edgeface.recognize.gallery import Gallery
g = Gallery({str(path)!r}, {"d" * 64!r}, 8)
rng = np.random.default_rng(int(sys.argv[1]))
for i in range(40):
    v = rng.normal(size=(2, 8)).astype(np.float32)
    g.add(f"p{{sys.argv[1]}}_{{i}}", v / np.linalg.norm(v, axis=1, keepdims=True))
"""
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(k)]) for k in (1, 2)]
    reader = Gallery(path, "d" * 64, 8)
    deadline = time.time() + 60
    seen = 0
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        emb, owner, names = reader.templates()
        assert len(emb) == len(owner) and np.isfinite(emb).all()
        reader.match(l2_normalise(np.ones((1, 8))), 0.5)
        seen = max(seen, len(emb))
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert seen > 1  # the reader saw the writers' commits while they were writing
    emb, _, names = reader.templates()
    assert len(names) == 1 + 80 and len(emb) == 1 + 160
    assert reader.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_recognize_bad_input(enrolled, tmp_path):
    assert_one_line_error(run_cli("recognize", "--source", "97", "--gallery", str(enrolled)), "cannot open camera")
    assert_one_line_error(run_cli("recognize", "--source", str(tmp_path / "none.mp4"), "--gallery", str(enrolled)),
                          "source not found")
    assert_one_line_error(run_cli("recognize", "--source", str(CLIP), "--gallery", str(tmp_path / "no.sqlite")),
                          "gallery not found")
    assert_one_line_error(run_cli("enroll", "bad/name", str(PROBES / "obama3.jpg"), "--gallery",
                                  str(tmp_path / "x.sqlite")), "not allowed")


def test_ctrl_c_stops_the_loop_cleanly_with_a_summary(enrolled):
    import signal

    from conftest import BLOCK_TF, CLI_LAUNCHER

    code = BLOCK_TF + CLI_LAUNCHER
    proc = subprocess.Popen([sys.executable, "-c", code, "recognize", "--source", str(CLIP), "--gallery",
                             str(enrolled), "--loop", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ})
    first = proc.stdout.readline()  # wait until frames flow
    assert json.loads(first)["frame"] >= 0
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    summary = json.loads(out.strip().splitlines()[-1])["summary"]
    assert summary["interrupted"] is True and summary["frames"] > 0


def test_a_large_gallery_matches_exactly_what_brute_force_matches(tmp_path):
    """25k templates (over the faiss threshold) of 200 people each with near-duplicate templates: every query's
    person and score equal the float32 brute-force answer."""
    pytest.importorskip("faiss", reason="faiss-cpu is the large-gallery extra (make setup installs it)")
    from edgeface.recognize.match import FAST_INDEX_MIN

    rng = np.random.default_rng(3)
    centres = l2_normalise(rng.normal(size=(200, 128)))
    per = FAST_INDEX_MIN // 200 + 25
    gallery = Gallery(tmp_path / "big.sqlite", "e" * 64, 128)
    for i, c in enumerate(centres):
        gallery.add(f"p{i:03d}", l2_normalise(c + 0.02 * rng.normal(size=(per, 128))))
    emb, owner, names = gallery.templates()
    assert len(emb) > FAST_INDEX_MIN and gallery._cache[1].index is not None
    queries = l2_normalise(centres[rng.integers(0, 200, 60)] + 0.05 * rng.normal(size=(60, 128)))
    for q, m in zip(queries, gallery.match(queries, 0.5), strict=True):
        sims = emb @ q
        assert m.person == names[int(owner[int(np.argmax(sims))])]
        assert m.score == pytest.approx(float(sims.max()), abs=1e-6)


def test_a_track_is_named_once_its_match_held_for_confirm_frames():
    """Two frames of a stranger over the threshold name nobody; three in a row of the same person name them; a
    change of person starts the count again."""
    from edgeface.recognize.tracking import Tracker

    tracker = Tracker(window=1)
    box = np.array([[10, 10, 60, 60]], np.float32)
    emb = l2_normalise(np.ones((1, 8)))
    seen = []
    for name in ["obama", "obama", None, "obama", "obama", "obama", "biden", "biden", "biden"]:
        track = tracker.update(box, emb)[0][0]
        seen.append(tracker.confirmed(track, name, 3))
    assert seen == [False, False, False, False, False, True, False, False, True]
    assert tracker.confirmed(track, "biden", 1)  # a photo on its own is named at once


def test_a_settled_track_rests_on_every_other_detected_frame_only():
    """A track may skip its embedding once its match has held for ``confirm`` frames, and never twice in a row; a
    rested detection keeps its track alive and adds nothing to its average."""
    from edgeface.recognize.tracking import Tracker

    tracker = Tracker(window=5, max_age=2)
    box = np.array([[10, 10, 60, 60]], np.float32)
    emb = l2_normalise(np.ones((1, 8)))
    rests = []
    for _ in range(3):
        track = tracker.update(box, emb)[0][0]
        rests.append(tracker.may_rest(track, 3))  # asked before the match is recorded: not settled yet
        tracker.confirmed(track, None, 3)
    assert rests == [False, False, False] and tracker.may_rest(track, 3)
    ids, smoothed = tracker.update(box, [None])
    assert ids == [track] and smoothed == [None] and not tracker.may_rest(track, 3)
    assert len(tracker.tracks[0].embeddings) == 3
    for _ in range(3):  # resting on every other frame keeps it alive past max_age
        tracker.update(box, emb)
        tracker.update(box, [None])
    assert tracker.is_live(track) and not tracker.take_ended()


def test_key_frames_embed_a_settled_face_on_every_other_one(enrolled):
    """The clip's audience shot (frames 211-274) at --detect-every 4: a face on a settled track is embedded on every
    other key frame only, a face on a new or unsettled track on every one; no track goes two key frames in a row
    without an embedding, and fewer faces are embedded than key frames show (the audience is too dark for the
    default model's light gates: the key frames are checked without them)."""
    import edgeface

    with edgeface.Gallery(enrolled, read_only=True, light_gates=False) as gallery:
        keyed = gallery.recognizer.frames(gallery.store, detect_every=4)
        update, calls = keyed.tracker.update, []

        def spy(boxes, embeddings):
            ids, smoothed = update(boxes, embeddings)
            calls.append({i: e is not None for i, e in zip(ids, embeddings, strict=True)})
            return ids, smoothed

        keyed.tracker.update = spy
        for frame in clip_frames(211, 274):
            keyed.process(frame)
    shown = sum(len(c) for c in calls)
    embedded = sum(sum(c.values()) for c in calls)
    assert len(calls) >= 14 and embedded < 0.8 * shown, (embedded, shown)
    for before, now in itertools.pairwise(calls):
        assert not any(not now[t] and not before[t] for t in now if t in before), (before, now)


def test_following_finds_the_face_where_it_is_and_keeps_the_size_it_was_given():
    """YuNet.follow on the next clip frame, from each face's box in the frame before: the face is found again at its
    new place (centre within a fifth of its width of where whole-frame detection puts it) with the box size it was
    given, not the 96 px look's own (which runs larger and would compound frame after frame); a dim face (detected
    under 0.8) may be lost, and a box where no face is finds nothing."""
    from edgeface.vision.yunet import YuNet

    before, now = clip_frames(250, 251)
    yunet = YuNet()
    faces, truth = yunet.detect(before, bgr=True), yunet.detect(now, bgr=True)
    centres = np.array([(f.box[:2] + f.box[2:]) / 2 for f in truth])
    followed = [(face, yunet.follow(now, face.box, bgr=True)) for face in faces]
    assert len(faces) >= 5 and all(found is not None for face, found in followed if face.score >= 0.8)
    for face, found in followed:
        if found is None:
            continue
        np.testing.assert_allclose(found.box[2:] - found.box[:2], face.box[2:] - face.box[:2], rtol=1e-5)
        gap = np.abs(centres - (found.box[:2] + found.box[2:]) / 2).max(axis=1).min()
        assert gap <= 0.2 * face.width, (face.box, found.box)
    assert yunet.follow(now, np.array([560, 250, 620, 330], np.float32), bgr=True) is None


def test_an_uncertain_candidate_on_a_known_face_is_followed_not_looked_at_closer(monkeypatch):
    """YuNet on a clip frame: given the faces it found as known boxes, its uncertain candidates on them are
    followed (a 96 px look) instead of a closer look (192 px); the others still get their closer look, and the
    same faces are found."""
    from edgeface.vision.face import iou
    from edgeface.vision.yunet import YuNet

    frame = clip_frames(250, 250)[0]
    yunet = YuNet()
    looks: list[str] = []
    run = yunet._run
    monkeypatch.setattr(yunet, "_run", lambda bgr, floor, look="frame": looks.append(look) or run(bgr, floor, look))
    alone = yunet.detect(frame, bgr=True)
    closer = looks.count("closer")
    looks.clear()
    known = np.array([f.box for f in alone], np.float32)
    again = yunet.detect(frame, bgr=True, known=known)
    # the candidates on known faces are followed; one that was no face is still looked at closer (and refused), as
    # is one the follow loses
    assert looks.count("follow") >= 2 and looks.count("closer") < closer, (closer, looks)
    found = np.array([f.box for f in again], np.float32)
    assert len(again) == len(alone) and all(iou(box, found).max() >= 0.5 for box in known)


def test_camera_name_in_events_and_a_missing_camera_honours_max_seconds(enrolled, tmp_path):
    events = tmp_path / "events.jsonl"
    done = run_cli("recognize", "--source", str(PROBES / "obama3.jpg"), "--gallery", str(enrolled), "--camera",
                   "front door", "--events", str(events), "--json")
    assert done.returncode == 0, done.stderr
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    assert {e["camera"] for e in sent} == {"front door"} and {e["name"] for e in sent} == {"obama"}
    assert {e["source"] for e in sent} == {str(PROBES / "obama3.jpg")}
    started = time.monotonic()
    assert_one_line_error(run_cli("recognize", "--source", "7", "--max-seconds", "2", "--gallery", str(enrolled)),
                          "camera 7")
    assert time.monotonic() - started < 2 + 6  # the interpreter's start, then at most --max-seconds of retries


def test_a_gallery_remembers_its_model_and_a_mismatch_names_both(tmp_path):
    gallery = str(tmp_path / "small.sqlite")
    done = run_cli("enroll", "obama", str(MEDIA / "gallery" / "obama" / "obama.jpg"), "--gallery", gallery,
                   "--model", "small")
    assert done.returncode == 0, done.stderr
    listing = json.loads(run_cli("gallery", "list", "--gallery", gallery, "--json").stdout)
    assert listing["model"] == "small" and listing["total_people"] == 1
    # no --model: the gallery's own model recognises (the default would be refused)
    found = run_cli("recognize", "--source", str(PROBES / "obama3.jpg"), "--gallery", gallery, "--json")
    assert found.returncode == 0, found.stderr
    assert [json.loads(line)["name"] for line in found.stdout.splitlines()[:-1]] == ["obama"]
    assert_one_line_error(run_cli("recognize", "--source", str(PROBES / "obama3.jpg"), "--gallery", gallery,
                                  "--model", "default"), "enrolled with model small", "not with this model default")


def test_gallery_list_is_quick_at_100k_templates(tmp_path):
    """50,000 people with two templates each: counts and the first page, not 50,000 table rows."""
    path = tmp_path / "big.sqlite"
    store = Gallery(path, "f" * 64, 8)
    rng = np.random.default_rng(0)
    vectors = l2_normalise(rng.normal(size=(100_000, 8)).astype(np.float32))
    with store.transaction() as db:
        db.executemany("INSERT INTO people (name, created) VALUES (?, 0)", [(f"p{k:05d}",) for k in range(50_000)])
        db.executemany("INSERT INTO templates (person_id, embedding, created) VALUES (?, ?, 0)",
                       [(k // 2 + 1, v.tobytes()) for k, v in enumerate(vectors)])
    started = time.perf_counter()
    counts, first = store.counts(), store.people(limit=50)
    assert time.perf_counter() - started < 1.0
    assert counts == {"people": 50_000, "templates": 100_000} and len(first) == 50 and first[0]["templates"] == 2
    assert [p["name"] for p in store.people("P4999")] == [f"p4999{k}" for k in range(10)]
    assert store.people("100%") == [] and store.people("p_") == []  # the pattern is literal text
    store.close()
    started = time.perf_counter()
    listed = run_cli("gallery", "list", "--gallery", str(path))
    assert listed.returncode == 0 and time.perf_counter() - started < 10
    assert "50000 people, 100000 templates" in " ".join(listed.stdout.split()) and listed.stdout.count("│ p") == 50


def test_labels_stay_inside_the_frame_and_never_overlap():
    from edgeface.recognize.loop import draw, label_layout
    from edgeface.recognize.results import RecognisedFace

    def face(name: str | None, score: float, box: tuple[float, ...]) -> RecognisedFace:
        return RecognisedFace(box, (), 0.9, 0.1, name=name, score=score)

    results = [  # a face at the right edge, one at the top, three side by side in a crowd, an unknown face
        face("christopher_jackson", 0.951, (1880.0, 500.0, 1918.0, 540.0)),
        face("obama", 0.97, (900.0, 0.0, 960.0, 60.0)),
        *(face(f"person_{k}", 0.95, (400.0 + 8 * k, 300.0, 440.0 + 8 * k, 340.0)) for k in range(3)),
        face(None, -0.05, (100.0, 700.0, 160.0, 760.0)),
    ]
    layout = label_layout(results, 1920, 1080)
    rects = [rect for _, _, rect in layout]
    assert all(x0 >= 0 and y0 >= 0 and x1 <= 1920 and y1 <= 1080 for x0, y0, x1, y1 in rects), rects
    for i, a in enumerate(rects):
        for b in rects[i + 1:]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    labels = {r.name: label for r, label, _ in layout}
    assert labels[None] == "unknown" and labels["obama"] == "obama 0.97"
    frame = np.zeros((1080, 1920, 3), np.uint8)
    draw(frame, results)
    assert frame[:, 1900:].any()  # the right-edge label is drawn, inside the frame


def test_recognize_warns_once_when_the_threshold_was_placed_on_clean_photos_only(tmp_path, enrolled):
    from dataclasses import replace

    from edgeface.default_model import resolve_model
    from edgeface.manifest import load_manifest, save_manifest

    model = tmp_path / "clean-only.tflite"
    shutil.copyfile(resolve_model("small"), model)
    save_manifest(model, replace(load_manifest(model), threshold_source="LFW View 2 (edgeface quantize --max-drop)"))
    gallery = str(tmp_path / "g.sqlite")
    assert run_cli("enroll", "obama", str(MEDIA / "gallery" / "obama" / "obama.jpg"), "--gallery", gallery,
                   "--model", str(model)).returncode == 0
    warned = run_cli("recognize", "--source", str(CLIP), "--max-frames", "30", "--gallery", gallery)
    assert warned.returncode == 0 and warned.stderr.count("warning: clean-only.tflite's threshold") == 1
    assert "--hold-conditions" in warned.stderr
    held = run_cli("recognize", "--source", str(PROBES / "obama3.jpg"), "--gallery", str(enrolled))
    assert held.returncode == 0 and "warning" not in held.stderr  # the shipped model's threshold holds
    given = run_cli("recognize", "--source", str(PROBES / "obama3.jpg"), "--gallery", gallery, "--threshold", "0.6")
    assert "warning" not in given.stderr  # the user chose the threshold
