"""One pipeline, one face record: the CLI, the Python API (photos and video) and ``serve`` build the same
``PipelineConfig`` and give the same records, field for field; one photo policy for every command."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import BLOCK_TF, CLI_LAUNCHER, MEDIA, assert_one_line_error, needs_shared, run_cli

from edgeface.errors import EdgefaceError
from edgeface.recognize.config import PipelineConfig

pytestmark = needs_shared

CLIP = MEDIA / "short_hamilton_clip.mp4"
PROBES = MEDIA / "probes"
# settings away from every default, so a surface that ignored one would show it
CONFIG = PipelineConfig(min_face=40, confirm=2, smooth=4, max_turn=1.0, detect_size=480)


def flags(config: PipelineConfig) -> list[str]:
    """The CLI's spelling of the config's settings that differ from the defaults."""
    default = PipelineConfig().to_dict()
    return [part for key, value in config.to_dict().items() if value != default[key]
            for part in (f"--{key.replace('_', '-')}", str(value))]


def options(config: PipelineConfig) -> dict:
    default = PipelineConfig().to_dict()
    return {k: v for k, v in config.to_dict().items() if v != default[k]}


def cli_rows(stdout: str) -> list[dict]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    return [row for row in rows if "box" in row]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pipeline") / "people.sqlite"
    done = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(path))
    assert done.returncode == 0, done.stderr
    return path


def test_a_config_is_checked_once_when_made():
    with pytest.raises(EdgefaceError, match="--confirm must be a whole number"):
        PipelineConfig(confirm=0)
    with pytest.raises(EdgefaceError, match="--threads must be a whole number from 1 to"):
        PipelineConfig(threads=100_000)
    with pytest.raises(EdgefaceError, match="--max-turn must be above 0"):
        PipelineConfig(max_turn=float("nan"))
    with pytest.raises(EdgefaceError, match="unknown option 'treshold'"):
        PipelineConfig.of(treshold=0.5)
    with pytest.raises(EdgefaceError, match="threshold must be a cosine similarity"):
        PipelineConfig(threshold=5)
    assert PipelineConfig(confirm=2).but(smooth=3) == PipelineConfig(confirm=2, smooth=3)


def test_photos_give_the_same_records_through_the_cli_the_api_and_serve(gallery: Path, tmp_path: Path):
    import edgeface

    probes = sorted(PROBES.glob("*.jpg"))
    done = run_cli("recognize", "--source", str(PROBES), "--gallery", str(gallery), "--json", *flags(CONFIG))
    assert done.returncode == 0, done.stderr
    from_cli: dict[str, list] = {p.name: [] for p in probes}
    for row in cli_rows(done.stdout):
        from_cli[Path(row.pop("source")).name].append(row)
        del row["time"], row["frame"]
    with edgeface.Gallery(gallery, **options(CONFIG)) as people:
        from_api = {p.name: people.identify(p) for p in probes}
    process = subprocess.Popen([sys.executable, "-c", BLOCK_TF + CLI_LAUNCHER, "serve", "--port", "0", "--gallery",
                                str(gallery), *flags(CONFIG)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path)
    try:
        url = re.search(r"http://\S+/", process.stdout.readline()).group(0)
        with httpx.Client(base_url=url, timeout=60) as client:
            from_serve = {p.name: client.post("/api/recognize", content=p.read_bytes(),
                                              headers={"Content-Type": "image/jpeg"}).json()["faces"]
                          for p in probes}
    finally:
        process.terminate()
        process.communicate(timeout=30)
    for rows in (*from_api.values(), *from_cli.values(), *from_serve.values()):
        for row in rows:
            row["track"] = None  # numbered per process
    assert from_api == from_cli == from_serve
    assert sum(len(rows) for rows in from_api.values()) >= 5
    # the settings reached every surface: no face under 40 px was compared, none turned past 1.0
    compared = [row for rows in from_api.values() for row in rows if row["score"] is not None]
    assert compared and all(row["box"][2] - row["box"][0] >= 40 and row["turn"] <= 1.0 for row in compared)
    assert all(row["detection"] is not None and set(row) >= {"name", "candidate", "score", "box", "landmarks"}
               for rows in from_api.values() for row in rows)


def test_video_gives_the_same_records_through_the_cli_and_the_api_watch(gallery: Path):
    import edgeface

    done = run_cli("recognize", "--source", str(CLIP), "--gallery", str(gallery), "--max-frames", "60", "--json",
                   *flags(CONFIG))
    assert done.returncode == 0, done.stderr
    from_cli = cli_rows(done.stdout)
    for row in from_cli:
        del row["time"], row["source"]
    from_api = []
    with edgeface.Gallery(gallery, read_only=True, **options(CONFIG)) as people:
        for index, (_, faces) in enumerate(people.watch(CLIP)):
            if index == 60:
                break
            from_api += [{"frame": index, **face} for face in faces]
    assert len(from_cli) > 60 and from_api == from_cli


def test_the_python_video_example_names_nobody_wrongly(gallery: Path):
    """The README's video example on the whole demo clip: the clip shows Lin-Manuel Miranda (not enrolled) and
    Alex Lacamoire (enrolled); Obama, Biden, Kit Harington and Rose Leslie are enrolled and never in it. Named
    frame by frame (``identify`` on each frame, as a face_recognition user writes it) a stranger is named; tracked
    and confirmed (``watch``) nobody is."""
    import edgeface

    with edgeface.Gallery(gallery, read_only=True) as people:
        names = [face["name"] for _, faces in people.watch(str(CLIP)) for face in faces]
    assert len(names) > 600
    assert set(names) <= {None, "alex_lacamoire"}


def test_verify_and_recognize_find_the_same_faces_with_blazeface(gallery: Path):
    """One photo policy: BlazeFace's short range, then its full range, each with retries, for every command."""
    for probe in ("obama3.jpg", "two_people.jpg", "obama-480p.jpg"):
        photo = PROBES / probe
        verified = run_cli("verify", str(photo), str(photo), "--detector", "blazeface", "--json",
                           "--threshold", "0.5")
        assert verified.returncode == 0, verified.stderr
        doc = json.loads(verified.stdout)
        done = run_cli("recognize", "--source", str(photo), "--gallery", str(tmp_gallery(gallery)), "--detector",
                       "blazeface", "--json")
        rows = cli_rows(done.stdout)
        assert done.returncode == 0 and len(rows) == doc["faces"][0], (probe, done.stderr)
        assert doc["boxes"][0] in [row["box"] for row in rows]


def tmp_gallery(gallery: Path) -> Path:
    """A gallery enrolled with BlazeFace's alignment next to the YuNet one (a gallery records its alignment)."""
    path = gallery.with_name("blazeface.sqlite")
    if not path.exists():
        done = run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(path), "--detector", "blazeface")
        assert done.returncode == 0, done.stderr
    return path


def test_the_cli_refuses_unbounded_threads_at_parse_time():
    assert_one_line_error(run_cli("recognize", "--source", str(CLIP), "--threads", "100000"),
                          "--threads must be a whole number from 1 to")


def test_the_readme_video_example_runs_as_written_and_names_nobody_wrongly(tmp_path: Path):
    """The README's video lines, on the demo clip against the demo gallery: only Alex Lacamoire, who is in the
    clip, may be named."""
    import shutil

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    code = re.search(r"<!-- video-example -->\s*```python\n(.*?)```", text, re.S).group(1)
    shutil.copyfile(CLIP, tmp_path / CLIP.name)
    assert run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(tmp_path / "people.sqlite"),
                   cwd=tmp_path).returncode == 0
    done = subprocess.run([sys.executable, "-c", BLOCK_TF + code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert {line.split()[0] for line in done.stdout.splitlines()} <= {"alex_lacamoire"}


def test_every_shipped_name_works_where_a_model_is_taken(tmp_path: Path):
    """The names `edgeface models` lists are taken by every command that takes a model; a .tflite given to
    `export` is sent to the command that takes it, at once (before TensorFlow loads)."""
    listed = json.loads(run_cli("models", "--json").stdout)["shipped"]
    assert {"default", "fast", "small", "port", "default-float32", "small-float32"} == {r["name"] for r in listed}
    assert json.loads(run_cli("info", "fast", "--json").stdout)["file"].endswith("edgeface-fast.tflite")
    bench = run_cli("bench", "default-float32", "--runs", "3", "--warmup", "1", "--json")
    assert bench.returncode == 0, bench.stderr
    done = run_cli("export", "edgeface-default-float32.tflite", "-o", str(tmp_path / "x.tflite"), timeout=20)
    assert_one_line_error(done, "already a .tflite", "edgeface quantize")
    recognize_help = run_cli("recognize", "--help", env={"COLUMNS": "80"}).stdout
    assert max(len(line) for line in recognize_help.splitlines()) <= 80
    for flag in ("--unknown-events", "--no-unknown-events", "--mqtt-password-file", "--overlay-fps", "--detect-every"):
        assert flag in recognize_help  # whole, at 80 columns
    for name in ("small", "fast", "default-float32"):
        assert name in " ".join(recognize_help.split())
    quantized = run_cli("quantize", "small-float32", "-o", str(tmp_path / "small-dynamic.tflite"), "--recipe",
                        "dynamic", "--json")
    assert quantized.returncode == 0, quantized.stderr
    assert json.loads(quantized.stdout)["model"].endswith("edgeface-small-float32.tflite")
