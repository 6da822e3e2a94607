"""Round 3 of the hostile-input sweep: one test per class of failure found, so each class stays closed.

Files edgeface reads (prepared folders, model manifests) are data, not instructions; special files never block;
credentials never print; broken models are errors, not decisions; every numeric option is range-checked.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import shutil
import stat
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, MEDIA, assert_one_line_error, needs_shared, run_cli

pytestmark = needs_shared
OBAMA = MEDIA / "gallery" / "obama" / "obama.jpg"
PROBE = MEDIA / "probes" / "obama3.jpg"


def small_prepared(root: Path) -> Path:
    from edgeface.data.prepare import prepare

    src = root / "src" / "s1"
    src.mkdir(parents=True)
    for img in sorted((DATA / "orl" / "s1").glob("*.png"))[:2]:
        shutil.copyfile(img, src / img.name)
    faces = root / "faces"
    assert prepare(root / "src", faces, workers=1)["ok"] == 2
    return faces


def rewrite_manifest(folder: Path, change) -> None:
    path = folder / "manifest.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("\n".join(change(lines)) + "\n")


@pytest.mark.parametrize("file", ["../../../escaped.jpg", "/tmp/escaped-edgeface.jpg"])
def test_views_never_write_outside_their_folder(tmp_path: Path, file: str):
    faces = small_prepared(tmp_path)
    rewrite_manifest(faces, lambda rows: [json.dumps({**rows[0], "file": file}), *map(json.dumps, rows[1:])])
    result = run_cli("data", "views", str(faces), str(tmp_path / "views"))
    assert_one_line_error(result, "relative path inside")
    assert not list(tmp_path.parent.rglob("escaped*")) and not Path("/tmp/escaped-edgeface_v0.jpg").exists()
    assert not (tmp_path / "views").exists() or not list((tmp_path / "views").rglob("*.jpg"))


@pytest.mark.parametrize("change, needle", [
    (lambda rows: [json.dumps({k: v for k, v in rows[0].items() if k != "landmarks"})], "landmarks"),
    (lambda rows: ["[1, 2, 3]", *map(json.dumps, rows)], "not a record"),
    (lambda rows: [json.dumps({**rows[0], "box": [1, 2]})], "box"),
])
def test_views_of_a_damaged_folder_are_one_line(tmp_path: Path, change, needle: str):
    faces = small_prepared(tmp_path)
    rewrite_manifest(faces, change)
    assert_one_line_error(run_cli("data", "views", str(faces), str(tmp_path / "views")), needle)


RECEIVED: list[tuple[str | None, dict]] = []


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        RECEIVED.append((self.headers.get("Authorization"), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_credentials_in_urls_are_used_never_printed(tmp_path: Path):
    """A webhook with user:password@ delivers with HTTP basic auth; neither the table nor --json shows the password
    (nor an rtsp-style source's)."""
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    RECEIVED.clear()
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    url = f"http://alice:s3cret@127.0.0.1:{server.server_port}/hook"
    try:
        for extra in ([], ["--json"]):
            result = run_cli("recognize", "--source", str(PROBE), "--gallery", str(gallery), "--events", url, *extra)
            assert result.returncode == 0, result.stderr
            assert "s3cret" not in result.stdout + result.stderr
            assert "alice:***@" in result.stdout
    finally:
        server.shutdown()
    assert RECEIVED, "the webhook never delivered"
    assert {auth for auth, _ in RECEIVED} == {"Basic " + base64.b64encode(b"alice:s3cret").decode()}
    assert {event["name"] for _, event in RECEIVED} == {"obama"}


def test_special_files_never_block_and_huge_files_are_refused(tmp_path: Path):
    fifo = tmp_path / "face.jpg"
    os.mkfifo(fifo)
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    for args in (["verify", str(fifo), str(OBAMA)], ["detect", str(fifo)], ["verify", "/dev/zero", str(OBAMA)],
                 ["recognize", "--source", str(fifo), "--gallery", str(gallery)]):
        assert_one_line_error(run_cli(*args, timeout=60), "not a regular file")
    events = tmp_path / "events.jsonl"
    os.mkfifo(events)
    assert_one_line_error(run_cli("recognize", "--source", str(PROBE), "--gallery", str(gallery), "--events",
                                  str(events), timeout=60), "not a regular file")
    big = tmp_path / "big.jpg"
    big.write_bytes(OBAMA.read_bytes())
    result = run_cli("verify", str(big), str(OBAMA), env={"EDGEFACE_MAX_IMAGE_BYTES": "1000"})
    assert_one_line_error(result, "too large")


def test_what_names_people_is_written_private(tmp_path: Path):
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    events, video = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    result = run_cli("recognize", "--source", str(MEDIA / "short_hamilton_clip.mp4"), "--gallery", str(gallery),
                     "--events", str(events), "--output", str(video), "--max-frames", "5")
    assert result.returncode == 0, result.stderr
    for path in (events, video):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_manifest_from_another_file_or_out_of_range_is_refused(tmp_path: Path):
    from edgeface.default_model import resolve_model
    from edgeface.tflite_metadata import embed_manifest, read_manifest

    small = Path(resolve_model("small"))
    manifest = read_manifest(small.read_bytes())
    other = read_manifest(Path(resolve_model("small-float32")).read_bytes())
    forged = tmp_path / "forged.tflite"
    forged.write_bytes(embed_manifest(small.read_bytes(), other))  # the int8 file wearing its float twin's manifest
    assert_one_line_error(run_cli("verify", str(OBAMA), str(PROBE), "--model", str(forged)), "another model file")
    for field, value, needle in (("threshold", 1e-9, "threshold"), ("scale", 1e-6, "scale"),
                                 ("scale", -0.0078125, "scale"), ("mean", -500.0, "mean")):
        changed = json.loads(json.dumps(manifest))
        if field == "threshold":
            changed["threshold"] = value
        else:
            changed["input"][field] = value
        model = tmp_path / f"{field}.tflite"
        model.write_bytes(embed_manifest(small.read_bytes(), changed))
        assert_one_line_error(run_cli("verify", str(OBAMA), str(PROBE), "--model", str(model)), needle)


def test_a_model_that_outputs_nan_or_zeros_is_an_error_not_a_decision(tmp_path: Path):
    from edgeface.manifest import InputSpec, Manifest
    from edgeface.training.export import export
    from edgeface.training.tf_setup import keras

    for name, fn in (("nan", lambda v: v * float("nan")), ("zeros", lambda v: v * 0.0)):
        inputs = keras.Input((112, 112, 3))
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        x = keras.layers.Dense(16)(x)
        model = keras.Model(inputs, keras.layers.Lambda(fn)(x))
        path, _ = export(model, tmp_path / f"{name}.tflite",
                         manifest=Manifest(input=InputSpec(mean=127.5, scale=1 / 127.5), threshold=0.5))
        result = run_cli("verify", str(OBAMA), str(OBAMA), "--model", str(path), "--json")
        assert_one_line_error(result, "broken")
        assert "NaN" not in result.stdout


@pytest.mark.parametrize("args, needle", [
    (["quantize", "x.tflite", "-o", "y.tflite", "--max-drop", "nan", "--lfw-dir", ".", "--pairs", "p"], "--max-drop"),
    (["recognize", "--source", "PROBE", "--max-turn", "-1", "--threshold", "0.5"], "--max-turn"),
    (["recognize", "--source", "PROBE", "--smooth", "0", "--threshold", "0.5"], "--smooth"),
    (["recognize", "--source", "PROBE", "--smooth", "-3", "--threshold", "0.5"], "--smooth"),
])
def test_numeric_options_are_range_checked(tmp_path: Path, args: list[str], needle: str):
    from edgeface.default_model import resolve_model

    args = [str(PROBE) if a == "PROBE" else a for a in args]
    if args[0] == "quantize":
        args[1] = str(resolve_model("small-float32"))
        args[3] = str(tmp_path / "y.tflite")
    else:
        args += ["--gallery", str(tmp_path / "g.sqlite")]
    assert_one_line_error(run_cli(*args), needle)
    assert not (tmp_path / "y.tflite").exists()


def test_detect_csv_quotes_names_and_names_what_it_skips(tmp_path: Path):
    folder = tmp_path / "photos"
    folder.mkdir()
    odd = 'a, "quoted"\nname.jpg'
    shutil.copyfile(OBAMA, folder / odd)
    (folder / "anim.gif").write_bytes(b"GIF89a")
    os.mkfifo(folder / "pipe.jpg")
    (folder / "loop.jpg").symlink_to(folder / "loop.jpg")
    result = run_cli("detect", str(folder), "--csv", timeout=60)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["file", "top", "right", "bottom", "left"]
    assert [r[0] for r in rows[1:]] == [str(folder / odd)] and len(rows[1]) == 5
    for skipped in ("anim.gif", "pipe.jpg", "loop.jpg"):
        assert skipped in result.stderr


def test_an_empty_source_is_an_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    for source in ("", str(tmp_path / "empty")):
        result = run_cli("recognize", "--source", source, "--gallery", str(tmp_path / "g.sqlite"), "--threshold",
                         "0.5")
        assert_one_line_error(result)


def test_prepare_never_gives_two_photos_one_crop(tmp_path: Path):
    """x.png and x_png.jpg (and x.jpg beside x.JPG) of one person were one crop: one face silently lost."""
    from edgeface.data.prepare import prepare, read_manifest

    person = tmp_path / "src" / "p1"
    person.mkdir(parents=True)
    orl = sorted((DATA / "orl" / "s1").glob("*.png"))
    shutil.copyfile(orl[0], person / "x.png")
    from edgeface.vision.image import read_image, write_image

    write_image(person / "x_png.jpg", read_image(orl[1]))
    write_image(person / "y.jpg", read_image(orl[2]))
    write_image(person / "y.JPG", read_image(orl[3]))
    prepare(tmp_path / "src", tmp_path / "faces", workers=1)
    files = [r["file"] for r in read_manifest(tmp_path / "faces") if r["status"] == "ok"]
    assert len(files) == 4 and len({f.lower() for f in files}) == 4
    crops = [np.asarray(read_image(tmp_path / "faces" / f)) for f in files]
    assert all(not np.array_equal(a, b) for i, a in enumerate(crops) for b in crops[i + 1:])


def test_a_stream_that_dies_keeps_what_was_recorded(tmp_path: Path):
    """An MJPEG camera over HTTP sends 30 frames and is gone for good (404 on reconnect): the run ends with one line
    saying so, and the annotated video of those frames is kept, finalised, private."""
    import time
    from http.server import ThreadingHTTPServer

    import cv2

    clip = cv2.VideoCapture(str(MEDIA / "short_hamilton_clip.mp4"))
    frames = [cv2.imencode(".jpg", clip.read()[1])[1].tobytes() for _ in range(30)]
    served = []

    class Camera(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.append(self.path)
            if len(served) > 1:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            for jpg in frames:
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                                 + jpg + b"\r\n")
                time.sleep(0.03)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Camera)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    gallery, video = tmp_path / "g.sqlite", tmp_path / "out.mp4"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery), "--model", "small").returncode == 0
    try:
        result = run_cli("recognize", "--source", f"http://127.0.0.1:{server.server_port}/cam.mjpg", "--gallery",
                         str(gallery), "--model", "small", "--output", str(video), timeout=120)
    finally:
        server.shutdown()
    assert_one_line_error(result, "lost", str(video))
    recorded = cv2.VideoCapture(str(video))
    assert recorded.isOpened() and int(recorded.get(cv2.CAP_PROP_FRAME_COUNT)) > 0
    assert stat.S_IMODE(video.stat().st_mode) == 0o600


def test_a_read_only_gallery_is_named_as_such_not_as_damaged(tmp_path: Path):
    """SQLite's own error from a read-only database (root ignores file modes, so the database is opened read-only)
    becomes 'read-only, nothing was changed', never 'damaged'; so does a full disk."""
    import sqlite3

    from edgeface.recognize.gallery import Gallery, database_error

    path = tmp_path / "g.sqlite"
    Gallery(path, "a" * 64, 4).close()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("INSERT INTO people (name, created) VALUES ('x', 0)")
    message = str(database_error(path, caught.value))
    assert "read-only" in message and "damaged" not in message
    assert "disk holding gallery" in str(database_error(path, sqlite3.OperationalError("database or disk is full")))


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 512 KB tmpfs: a disk that can really fill up (needs the right to mount, as root in CI)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here to fill a disk: {done.stderr.decode().strip()[:100]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_is_named_and_recognition_still_runs(tiny_disk: Path):
    gallery = tiny_disk / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery), "--model", "small").returncode == 0
    fd = os.open(tiny_disk / "fill", os.O_WRONLY | os.O_CREAT)  # fill the disk to the last block
    with pytest.raises(OSError, match="No space"):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)
    result = run_cli("recognize", "--source", str(PROBE), "--gallery", str(gallery), "--model", "small", "--json")
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["name"] for line in result.stdout.splitlines()[:-1]] == ["obama"]
    assert "disk holding" in result.stderr  # said once, as a warning
    enrol = run_cli("enroll", "biden", str(MEDIA / "gallery" / "biden" / "biden.jpg"), "--gallery", str(gallery),
                    "--model", "small")
    assert_one_line_error(enrol, "full", "nothing was changed")
    fresh = run_cli("enroll", "biden", str(MEDIA / "gallery" / "biden" / "biden.jpg"), "--gallery",
                    str(tiny_disk / "new.sqlite"), "--model", "small")
    assert_one_line_error(fresh, "full")
    assert not (tiny_disk / "new.sqlite").exists()
