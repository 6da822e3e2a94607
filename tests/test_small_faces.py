"""Distant faces in 1080p frames: YuNet finds them, BlazeFace does not, and recognition names an enrolled person at
about 60 px. Frames are generated from LFW photos by edgeface.evaluate.scenes (seeded)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import DATA, LFW, PEER_FLAGS, PEER_FLOAT, assert_one_line_error, needs_shared, run_cli

from edgeface.evaluate.scenes import FacePhoto, lfw_photos, make_scene, match
from edgeface.vision.detect import FaceFinder, create_detector
from edgeface.vision.embedding_cache import cache_file, embed_paths

BACKGROUNDS = sorted((DATA / "celeba-subset" / "images").glob("*.jpg"))[:200]
WIDTHS = [40, 55, 70, 85, 100, 120]


def found(detector_name: str, scene) -> int:
    faces = create_detector(detector_name).detect(scene.image, bgr=True)
    hit, _ = match(scene.boxes, np.array([f.box for f in faces]).reshape(-1, 4), np.array([f.score for f in faces]))
    return int(hit.sum())


@needs_shared
def test_yunet_finds_distant_faces_in_a_1080p_frame_that_blazeface_misses():
    photos = [p for p in lfw_photos(LFW) if p.identity.startswith("A")][:300]
    scene = make_scene(np.random.default_rng(7), photos, BACKGROUNDS, widths=WIDTHS)
    assert scene.image.shape == (1080, 1920, 3) and len(scene.boxes) == 6
    yunet, blazeface = found("yunet", scene), found("blazeface", scene)
    print(f"6 faces of 40-120 px: YuNet found {yunet}, BlazeFace short range {blazeface}")
    assert yunet >= 5
    assert blazeface < yunet


@needs_shared
def test_scenes_are_reproducible_from_their_seed():
    photos = lfw_photos(LFW)[:50]
    a = make_scene(np.random.default_rng(3), photos, BACKGROUNDS, faces=4)
    b = make_scene(np.random.default_rng(3), photos, BACKGROUNDS, faces=4)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)


@needs_shared
def test_recognize_names_an_enrolled_person_at_60_px_in_1080p(tmp_path: Path):
    person = LFW / "Colin_Powell"
    photos = sorted(person.glob("*.jpg"))
    gallery = tmp_path / "g.sqlite"
    enrolled = run_cli("enroll", "powell", *map(str, photos[:3]), "--gallery", str(gallery))
    assert enrolled.returncode == 0, enrolled.stderr
    strangers = [p for p in lfw_photos(LFW) if p.identity.startswith("B")][:200]
    rng = np.random.default_rng(11)
    scene = make_scene(rng, strangers, BACKGROUNDS, widths=[60, 70, 90, 110])
    # paste the probe (a photo not enrolled) at 60 px into a free corner of the same frame
    from edgeface.evaluate.scenes import head_region, paste

    region, box = head_region(FacePhoto(photos[5]))
    truth = paste(scene.image, region, box, 60.0, 1700.0, 900.0)
    frame = tmp_path / "entrance.png"
    cv2.imwrite(str(frame), scene.image)
    result = run_cli("recognize", "--source", str(frame), "--gallery", str(gallery), "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if '"name"' in line]
    at_probe = [e for e in events if match(truth[None], np.array([e["box"]]))[0][0]]
    assert at_probe and at_probe[0]["name"] == "powell", events
    assert all(e["name"] is None for e in events if e not in at_probe), events


@needs_shared
def test_detections_and_embeddings_are_cached_per_detector(tmp_path: Path):
    """A BlazeFace cache is never read for YuNet: each detector has its own detection file, its own keypoints."""
    from edgeface.vision.embed import load_embedder

    paths = sorted((LFW / "Aaron_Peirsol").glob("*.jpg"))[:2]
    # no manifest, so no BlazeFace alignment: YuNet keeps its 5 points
    embedder = load_embedder(str(PEER_FLOAT), mean=0.0, scale=1.0, channels="RGB")
    by_detector = {}
    for name in ("blazeface", "yunet"):
        emb, _ = embed_paths(paths, embedder, workers=1, group="t", detector=name)
        by_detector[name] = emb
        finder = FaceFinder(name)
        with np.load(cache_file("detections", f"{finder.id}|t")) as data:
            counts = {int(row[6]) for row in data["values"]}
        assert counts == ({5} if name == "yunet" else {6})
    assert not np.allclose(by_detector["yunet"], by_detector["blazeface"])


@needs_shared
def test_a_gallery_refuses_another_detectors_alignment(tmp_path: Path):
    """A model aligned on YuNet's 5 points (the default onto dlib's chip, the peer onto ArcFace's) gets them: its
    gallery refuses BlazeFace crops.
    A model trained on BlazeFace crops (its manifest says blazeface-4pt) gets BlazeFace landmarks under either
    detector."""
    from edgeface.default_model import default_model_path
    from edgeface.manifest import load_manifest, save_manifest

    photo = str(DATA / "media" / "gallery" / "obama" / "obama.jpg")
    for name, model, alignment in (("peer", ["--model", str(PEER_FLOAT), *PEER_FLAGS], "yunet-5pt"),
                                   ("default", [], "yunet-dlib150")):
        gallery = tmp_path / f"{name}.sqlite"
        assert run_cli("enroll", "obama", photo, "--gallery", str(gallery), *model).returncode == 0
        result = run_cli("recognize", "--source", photo, "--gallery", str(gallery), "--threshold", "0.3",
                         "--detector", "blazeface", *model)
        assert_one_line_error(result, alignment, "--detector yunet")
    blaze = tmp_path / "blaze.tflite"
    shutil.copyfile(default_model_path("edgeface-small.tflite"), blaze)  # a model on the 112x112 template
    manifest = load_manifest(blaze)
    manifest.alignment = "blazeface-4pt"
    save_manifest(blaze, manifest)
    gallery = tmp_path / "blaze.sqlite"
    assert run_cli("enroll", "obama", photo, "--gallery", str(gallery), "--model", str(blaze)).returncode == 0
    for detector in ("yunet", "blazeface"):
        result = run_cli("recognize", "--source", photo, "--gallery", str(gallery), "--json", "--detector", detector,
                         "--model", str(blaze))
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.splitlines()[0])["name"] == "obama"


@needs_shared
@pytest.mark.parametrize("content", [b"", b"not a model at all, just bytes" * 10])
def test_an_empty_or_corrupt_detector_model_is_one_clear_line(tmp_path: Path, content: bytes):
    model = tmp_path / "yunet.tflite"
    model.write_bytes(content)
    src = tmp_path / "src" / "obama"
    src.mkdir(parents=True)
    (src / "obama3.jpg").write_bytes((DATA / "media" / "probes" / "obama3.jpg").read_bytes())
    result = run_cli("data", "prepare", str(tmp_path / "src"), str(tmp_path / "dst"),
                     env={"EDGEFACE_YUNET_MODEL": str(model)})
    assert_one_line_error(result, str(model))
    assert not (tmp_path / "dst").exists()


@pytest.mark.parametrize("args, needle", [(["--detect-size", "0"], "--detect-size"),
                                          (["--detect-size", "99999"], "--detect-size"),
                                          (["--min-face", "-3"], "--min-face"),
                                          (["--detector", "haar"], "")])
def test_bad_detector_settings_are_refused(tmp_path: Path, args: list[str], needle: str):
    result = run_cli("recognize", "--source", str(tmp_path), "--threshold", "0.5", *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert needle in result.stderr


@needs_shared
@pytest.mark.parametrize("side", [600, 1100, 1800])
def test_a_face_that_fills_a_large_photo_is_found(side: int):
    """Selfies and enrolment photos: a face far over YuNet's ~300 px comfort zone after resizing."""
    image = cv2.imread(str(sorted((LFW / "Colin_Powell").glob("*.jpg"))[0]))[40:210, 45:205]
    big = cv2.resize(image, (side, side), interpolation=cv2.INTER_CUBIC)
    faces = FaceFinder("yunet").find(big[..., ::-1].copy())
    assert faces, f"no face in a {side}x{side} close-up"
    assert faces[0].width > 0.4 * side


@needs_shared
def test_without_the_blazeface_files_the_default_model_still_recognises_and_says_what_it_costs(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    env = {"EDGEFACE_DETECTOR_DIR": str(tmp_path / "no-blazeface-here")}
    photo = str(DATA / "media" / "gallery" / "obama" / "obama.jpg")
    assert run_cli("enroll", "obama", photo, "--gallery", str(gallery), env=env).returncode == 0
    result = run_cli("recognize", "--source", str(DATA / "media" / "probes" / "obama3.jpg"), "--gallery",
                     str(gallery), "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("edgeface: warning: BlazeFace model files not found") == 1
    assert json.loads(result.stdout.splitlines()[0])["name"] == "obama"
