"""No silent wrong answer, no traceback, nothing lost: one or more cases per class of the hostile-input sweep."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    BLOCK_TF,
    CLI_LAUNCHER,
    LFW,
    MEDIA,
    PEER_FLAGS,
    PEER_FLOAT,
    assert_one_line_error,
    needs_shared,
    run_cli,
    small_pairs,
)

from edgeface.default_model import default_model_path
from edgeface.errors import EdgefaceError
from edgeface.manifest import load_manifest, save_manifest
from edgeface.tflite_metadata import check_tflite_file, model_identity, read_manifest

pytestmark = needs_shared
OBAMA = MEDIA / "gallery" / "obama" / "obama.jpg"


def events_of(result: subprocess.CompletedProcess) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [e for e in map(json.loads, result.stdout.splitlines()) if "summary" not in e]


# --- the manifest travels inside the model ---------------------------------------------------------------------

def test_a_model_copied_without_its_json_keeps_its_normalisation(tmp_path: Path):
    alone = tmp_path / "copied.tflite"
    shutil.copyfile(default_model_path(), alone)  # no .json beside it
    manifest = load_manifest(alone)
    assert manifest is not None and manifest.threshold
    # its input (dlib's 150x150 chip, raw RGB) and alignment travel inside the file
    assert (manifest.input.size, manifest.input.mean, manifest.input.scale) == (150, 0.0, 1.0)
    assert manifest.alignment == "yunet-dlib150"
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery), "--model", str(alone)).returncode == 0
    events = events_of(run_cli("recognize", "--source", str(MEDIA / "probes" / "obama3.jpg"), "--gallery",
                               str(gallery), "--model", str(alone), "--json"))
    assert [e["name"] for e in events] == ["obama"]  # without them it would be refused (no manifest, no flags)


def test_a_model_with_no_manifest_and_no_flags_is_refused(tmp_path: Path):
    pairs = small_pairs(tmp_path / "pairs.txt")
    result = run_cli("eval", str(PEER_FLOAT), "--lfw-dir", str(LFW), "--pairs", str(pairs))
    assert_one_line_error(result, "no manifest", "--input-mean")
    assert run_cli("eval", str(PEER_FLOAT), *PEER_FLAGS, "--lfw-dir", str(LFW), "--pairs", str(pairs)).returncode == 0


def test_updating_the_manifest_keeps_the_model_identity(tmp_path: Path):
    model = tmp_path / "m.tflite"
    shutil.copyfile(default_model_path(), model)
    before = model_identity(check_tflite_file(model))
    manifest = load_manifest(model)
    manifest.threshold = 0.5
    save_manifest(model, manifest)
    assert read_manifest(model.read_bytes())["threshold"] == 0.5
    assert model_identity(check_tflite_file(model)) == before == manifest.sha256
    assert json.loads(model.with_suffix(".json").read_text())["threshold"] == 0.5


@pytest.mark.parametrize("field, value, needle", [
    ("scale", "abc", "scale"), ("mean", None, "mean"), ("mean", 1e308, "mean"), ("threshold", "high", "threshold"),
    ("threshold", 5, "threshold"), ("size", -3, "size"),
])
def test_manifest_fields_of_the_wrong_type_are_one_line_errors(tmp_path: Path, field: str, value, needle: str):
    model = tmp_path / "m.tflite"
    shutil.copyfile(default_model_path(), model)
    manifest = load_manifest(model).to_dict()
    if field in ("scale", "mean", "size"):
        manifest["input"][field] = value
    else:
        manifest[field] = value
    from edgeface.tflite_metadata import embed_manifest

    model.write_bytes(embed_manifest(model.read_bytes(), manifest))
    assert_one_line_error(run_cli("info", str(model)), needle)


def test_a_deeply_nested_sidecar_manifest_is_one_line(tmp_path: Path):
    model = tmp_path / "peer.tflite"
    shutil.copyfile(PEER_FLOAT, model)
    model.with_suffix(".json").write_text("[" * 100_000 + "]" * 100_000)
    assert_one_line_error(run_cli("info", str(model)), "peer.json")


# --- thresholds ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-1", "0", "nan", "5", "inf"])
def test_recognize_refuses_a_threshold_outside_minus_one_to_one(tmp_path: Path, value: str):
    result = run_cli("recognize", "--source", str(OBAMA), "--threshold", value, "--gallery", str(tmp_path / "g"))
    assert_one_line_error(result, "--threshold")


def test_save_threshold_refuses_too_few_impostor_pairs_before_any_work(tmp_path: Path):
    model = tmp_path / "m.tflite"
    shutil.copyfile(default_model_path(), model)
    before = model.read_bytes()
    pairs = small_pairs(tmp_path / "pairs.txt", folds=2, per=2)
    result = run_cli("eval", str(model), "--lfw-dir", str(LFW), "--pairs", str(pairs), "--save-threshold")
    assert_one_line_error(result, "1,000", "different-person pairs")
    assert model.read_bytes() == before


# --- folders of photos are not a video -------------------------------------------------------------------------

def test_photos_of_a_folder_never_share_face_tracks(tmp_path: Path):
    """A photo and its mirror image: each names its own people, and each event names its file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    image = cv2.imread(str(MEDIA / "probes" / "two_people.jpg"))
    cv2.imwrite(str(folder / "a.jpg"), image)
    cv2.imwrite(str(folder / "b_mirror.jpg"), image[:, ::-1])
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery)).returncode == 0
    events = events_of(run_cli("recognize", "--source", str(folder), "--gallery", str(gallery), "--json"))
    by_file = {}
    for e in events:
        by_file.setdefault(Path(e["source"]).name, []).append(e)
    assert set(by_file) == {"a.jpg", "b_mirror.jpg"}
    width = image.shape[1]
    original = {e["name"]: (e["box"][0] + e["box"][2]) / 2 for e in by_file["a.jpg"]}
    mirrored = {e["name"]: (e["box"][0] + e["box"][2]) / 2 for e in by_file["b_mirror.jpg"]}
    assert set(original) == set(mirrored) == {"obama", "biden"}
    for name in original:  # each person is named where the mirror puts him
        assert abs(width - original[name] - mirrored[name]) < 20
    assert not {e["track"] for e in by_file["a.jpg"]} & {e["track"] for e in by_file["b_mirror.jpg"]}


# --- duplicates ------------------------------------------------------------------------------------------------

def test_enrolling_twice_and_importing_into_itself_never_doubles_templates(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    first = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery), "--json")
    assert first.returncode == 0, first.stderr
    count = sum(r["templates"] for r in json.loads(first.stdout))
    again = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery))
    assert again.returncode == 0 and "already in the gallery" in again.stderr
    exported = tmp_path / "export.npz"
    assert run_cli("gallery", "export", str(exported), "--gallery", str(gallery)).returncode == 0
    imported = run_cli("gallery", "import", str(exported), "--gallery", str(gallery))
    assert imported.returncode == 0 and "imported 0 templates" in imported.stdout
    listing = json.loads(run_cli("gallery", "list", "--gallery", str(gallery), "--json").stdout)
    assert sum(p["templates"] for p in listing["people"]) == count


def test_a_bad_folder_name_stops_enroll_dir_before_anyone_is_enrolled(tmp_path: Path):
    root = tmp_path / "people"
    (root / "alice").mkdir(parents=True)
    shutil.copyfile(OBAMA, root / "alice" / "1.jpg")
    (root / "bad|name").mkdir()
    shutil.copyfile(OBAMA, root / "bad|name" / "1.jpg")
    gallery = tmp_path / "g.sqlite"
    assert_one_line_error(run_cli("enroll", "--dir", str(root), "--gallery", str(gallery)), "bad|name")
    assert not gallery.exists()


# --- gallery files from elsewhere --------------------------------------------------------------------------------

def exported_gallery(tmp_path: Path) -> tuple[Path, Path]:
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    out = tmp_path / "export.npz"
    assert run_cli("gallery", "export", str(out), "--gallery", str(gallery)).returncode == 0
    return gallery, out


def rewrite(path: Path, **changes) -> Path:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for key, value in changes.items():
        if key == "header":
            header = json.loads(str(arrays["header"]))
            header.update(value)
            arrays["header"] = np.array(json.dumps(header))
        else:
            arrays[key] = value
    bad = path.with_name("bad.npz")
    np.savez(bad, **arrays)
    return bad


@pytest.mark.parametrize("change, needle", [
    ({"embeddings": lambda e: e * 1000}, "unit length"),
    ({"embeddings": lambda e: np.full_like(e, np.nan)}, "NaN"),
    ({"embeddings": lambda e: e[:, :64]}, "(N, 128)"),
    ({"header": {"embedding_size": 0}}, "embedding_size"),
    ({"header": {"model_sha256": 5}}, "model_sha256"),
    ({"names": lambda n: np.array(["../../etc"] * len(n))}, "not allowed"),
])
def test_gallery_import_validates_everything_and_changes_nothing_on_failure(tmp_path: Path, change, needle):
    gallery, export = exported_gallery(tmp_path)
    with np.load(export, allow_pickle=False) as data:
        values = {k: (v(data[k]) if callable(v) else v) for k, v in change.items()}
    bad = rewrite(export, **values)
    fresh = tmp_path / "fresh.sqlite"
    before = gallery.read_bytes()
    for target in (gallery, fresh):
        assert_one_line_error(run_cli("gallery", "import", str(bad), "--gallery", str(target)), needle)
    assert gallery.read_bytes() == before
    assert not fresh.exists()  # the file is checked before any gallery is opened or created


def test_an_import_file_declaring_gigabytes_is_refused_from_its_header(tmp_path: Path):
    _, export = exported_gallery(tmp_path)
    huge = tmp_path / "huge.npz"
    import zipfile

    with zipfile.ZipFile(export) as src, zipfile.ZipFile(huge, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "embeddings.npy":
                header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 128), np.float32))
                header["shape"] = (4_000_000, 128)
                import io

                buf = io.BytesIO()
                np.lib.format.write_array_header_1_0(buf, header)
                data = buf.getvalue() + b"\0" * 1024
            dst.writestr(item, data)
    assert_one_line_error(run_cli("gallery", "import", str(huge), "--gallery", str(tmp_path / "f.sqlite")),
                          "too large")


@pytest.mark.parametrize("sql, needle", [
    ("UPDATE meta SET value='x' WHERE key='schema_version'", "damaged"),
    ("UPDATE meta SET value='abc' WHERE key='embedding_size'", "damaged"),
    ("UPDATE templates SET embedding=X'0000'", "damaged"),
])
def test_a_damaged_gallery_is_named_with_the_way_out(tmp_path: Path, sql: str, needle: str):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    db = sqlite3.connect(gallery)
    db.execute(sql)
    db.commit()
    db.close()
    for args in (("gallery", "list"), ("gallery", "export", str(tmp_path / "e.npz")),
                 ("recognize", "--source", str(OBAMA))):
        result = run_cli(*args, "--gallery", str(gallery))
        if args[1] == "list" and "embedding" in sql:
            continue  # listing does not read template blobs
        assert_one_line_error(result, needle, "integrity_check")


def test_a_gallery_with_a_damaged_page_is_one_line(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(gallery)).returncode == 0
    db = sqlite3.connect(gallery)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray(gallery.read_bytes())
    page = 4096
    data[2 * page : 3 * page] = os.urandom(page)
    gallery.write_bytes(bytes(data))
    for args in (("gallery", "list"), ("recognize", "--source", str(OBAMA)), ("gallery", "remove", "obama")):
        result = run_cli(*args, "--gallery", str(gallery))
        assert "Traceback" not in result.stderr
        if result.returncode != 0:
            assert_one_line_error(result, str(gallery))


# --- inputs that ask for too much -------------------------------------------------------------------------------

def test_a_small_tiff_that_decodes_to_a_gigabyte_is_refused_from_its_header(tmp_path: Path):
    bomb = tmp_path / "bomb.tif"
    assert cv2.imwrite(str(bomb), np.zeros((8000, 8000), np.uint8), [cv2.IMWRITE_TIFF_COMPRESSION, 5])  # LZW
    assert bomb.stat().st_size < 2_000_000
    result = run_cli("enroll", "x", str(bomb), "--gallery", str(tmp_path / "g.sqlite"))
    assert result.returncode != 0 and "too large" in result.stderr and "Traceback" not in result.stderr
    src = tmp_path / "src" / "p"
    src.mkdir(parents=True)
    shutil.copyfile(bomb, src / "bomb.tif")
    prepared = run_cli("data", "prepare", str(tmp_path / "src"), str(tmp_path / "dst"), "--json")
    assert prepared.returncode == 0 and json.loads(prepared.stdout)["unreadable"] == 1


def test_info_on_a_device_file_is_one_line():
    assert_one_line_error(run_cli("info", "/dev/zero"), "not a regular file")


def test_a_keras_model_on_the_device_is_refused_with_the_export_command(tmp_path: Path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"PK")
    result = run_cli("recognize", "--source", str(OBAMA), "--model", str(model), "--threshold", "0.5")
    assert_one_line_error(result, "export it first")


# --- data prepare stays inside DST ------------------------------------------------------------------------------

@pytest.mark.parametrize("identity", ["../../escaped", "/tmp/abs", ".hidden"])
def test_prepare_never_writes_outside_dst(tmp_path: Path, identity: str):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(OBAMA, src / "o.jpg")
    ids = tmp_path / "ids.txt"
    ids.write_text(f"o.jpg {identity}\n")
    dst = tmp_path / "a" / "b" / "dst"
    result = run_cli("data", "prepare", str(src), str(dst), "--identities", str(ids))
    assert_one_line_error(result, "identity")
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.rglob("o.jpg"))[1:]


def test_prepare_refuses_a_prefix_with_a_path_in_it(tmp_path: Path):
    (tmp_path / "src" / "p").mkdir(parents=True)
    shutil.copyfile(OBAMA, tmp_path / "src" / "p" / "o.jpg")
    result = run_cli("data", "prepare", str(tmp_path / "src"), str(tmp_path / "dst"), "--prefix", "../../x")
    assert_one_line_error(result, "identity")


def test_prepare_keeps_a_jpg_and_a_png_of_one_name_apart(tmp_path: Path):
    person = tmp_path / "src" / "obama"
    person.mkdir(parents=True)
    shutil.copyfile(OBAMA, person / "a.jpg")
    cv2.imwrite(str(person / "a.png"), cv2.imread(str(MEDIA / "probes" / "obama3.jpg")))
    result = run_cli("data", "prepare", str(tmp_path / "src"), str(tmp_path / "dst"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] == 2
    assert sorted(p.name for p in (tmp_path / "dst" / "obama").iterdir()) == ["a.jpg", "a_png.jpg"]


# --- wrong with exit 0 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, needle", [
    (("recognize", "--max-frames", "-1"), "--max-frames"),
    (("recognize", "--max-seconds", "-5"), "--max-seconds"),
    (("data", "prepare", "--limit", "-1"), "--limit"),
    (("bench", "--threads", ""), "--threads"),
    (("bench", "--threads", ",,"), "--threads"),
])
def test_negative_and_empty_limits_are_refused(tmp_path: Path, args: tuple[str, ...], needle: str):
    gallery = tmp_path / "g.sqlite"
    if args[0] == "recognize":
        assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
        args = (*args, "--source", str(OBAMA), "--gallery", str(gallery))
    elif args[0] == "data":
        (tmp_path / "src" / "p").mkdir(parents=True)
        shutil.copyfile(OBAMA, tmp_path / "src" / "p" / "o.jpg")
        args = ("data", "prepare", str(tmp_path / "src"), str(tmp_path / "dst"), *args[2:])
    assert_one_line_error(run_cli(*args), needle)


def test_a_source_with_no_readable_frame_exits_non_zero(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert_one_line_error(run_cli("recognize", "--source", str(folder), "--gallery", str(gallery)), "no frame")


# --- outputs are never lost -----------------------------------------------------------------------------------------

def test_output_into_a_missing_or_read_only_folder_is_refused_before_any_work(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    missing = tmp_path / "nope" / "out.mp4"
    assert_one_line_error(run_cli("recognize", "--source", str(OBAMA), "--gallery", str(gallery), "--output",
                                  str(missing)), "does not exist")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        # root writes through permission bits; /proc/self is a folder nobody may create files in
        folder = locked if not os.access(locked, os.W_OK) else Path("/proc/self")
        assert not os.access(folder, os.W_OK)
        assert_one_line_error(run_cli("recognize", "--source", str(OBAMA), "--gallery", str(gallery), "--output",
                                      str(folder / "o.mp4")), "not writable")
    finally:
        locked.chmod(0o700)


def test_sigterm_finishes_the_recording_prints_the_summary_and_exits_zero(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    out = tmp_path / "rec.mp4"
    code = BLOCK_TF + CLI_LAUNCHER
    proc = subprocess.Popen([sys.executable, "-c", code, "recognize", "--source",
                             str(MEDIA / "short_hamilton_clip.mp4"), "--loop", "--gallery", str(gallery),
                             "--output", str(out), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    for _ in range(30):  # wait until frames flow
        line = proc.stdout.readline()
        if '"frame"' in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])["summary"]
    assert summary["interrupted"] is True and summary["frames"] > 0
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= summary["frames"] - 1
    cap.release()
    assert not list(tmp_path.glob(".*partial*"))


def test_ctrl_c_while_a_silent_stream_is_opening_exits_promptly(tmp_path: Path):
    import socket

    silent = socket.socket()  # accepts the connection, never answers: OpenCV's open blocks until its timeout
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    code = BLOCK_TF + CLI_LAUNCHER
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/camera.mjpg"
    proc = subprocess.Popen([sys.executable, "-c", code, "recognize", "--source", url, "--gallery", str(gallery)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=15)
    silent.close()
    assert proc.returncode != 0 and "Traceback" not in stderr
    assert "interrupted" in stderr


@pytest.mark.parametrize("seed", range(20))
def test_damaged_flatbuffers_give_edgeface_errors_or_nothing(tmp_path: Path, seed: int):
    """Random bytes behind a TFLite header: reading the manifest either finds none or says the file is damaged;
    no IndexError or struct.error escapes."""
    rng = np.random.default_rng(seed)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\0\0\0\0TFL3" + rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
    with contextlib.suppress(EdgefaceError):
        load_manifest(junk)


def test_portable_paths_leave_the_builders_file_system_out_and_formulas_alone():
    """Committed results and shipped manifests carry ``~/...`` or relative paths, never the builder's absolute
    ones; a lone "/" in a formula ("1114 MFLOP / (28.8 G/s x 0.21)") is a division, not the root folder."""
    from edgeface.files import portable

    home = str(Path.home())
    doc = portable({"model": f"{home}/.cache/edgeface/m.tflite", "cmd": [f"edgeface eval {home}/x.tflite --json"],
                    "arithmetic": "1114 MFLOP / (28.8 G/s x 0.21) = 184.22 ms", "url": "http://host/a"})
    assert doc == {"model": "~/.cache/edgeface/m.tflite", "cmd": ["edgeface eval ~/x.tflite --json"],
                   "arithmetic": "1114 MFLOP / (28.8 G/s x 0.21) = 184.22 ms", "url": "http://host/a"}
