"""A sweep of bad inputs and faults across the commands, as a hostile or careless user would try them.

Every case runs ``edgeface ...`` in a fresh process with a time limit and is classified:

* ``ok``: non-zero exit, exactly one ``edgeface: error:`` line on stderr, no traceback (and, where the case says
  so, the files that existed before are unchanged);
* ``traceback``, ``silent`` (exit 0 on bad input), ``multi-line``, ``hang`` (over the time limit), ``data loss``.

    python benchmarks/hostile_inputs.py      (needs ../shared for photos and the peer model)
-> results/hostile_inputs.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from common import LFW, MEDIA, SHARED, save

PEER = SHARED / "peers" / "mobilefacenet_float32.tflite"
OBAMA = MEDIA / "gallery" / "obama" / "obama.jpg"


@dataclass
class Case:
    name: str
    args: list[str]
    keep: list[Path] = field(default_factory=list)  # files that must be byte-identical afterwards
    timeout: float = 60.0


def run(case: Case) -> dict:
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in case.keep if p.exists()}
    env = {**os.environ, "EDGEFACE_QUIET": "1"}
    started = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "edgeface", *case.args], capture_output=True, text=True,
                              timeout=case.timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"case": case.name, "outcome": "hang"}
    seconds = round(time.perf_counter() - started, 2)
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("edgeface: error:")]
    lost = [str(p) for p, digest in before.items() if not p.exists()
            or hashlib.sha256(p.read_bytes()).hexdigest() != digest]
    if "Traceback" in done.stderr:
        outcome = "traceback"
    elif done.returncode == 0:
        outcome = "silent"
    elif lost:
        outcome = "data loss"
    elif len(lines) != 1:
        outcome = "multi-line"
    else:
        outcome = "ok"
    return {"case": case.name, "outcome": outcome, "exit": done.returncode, "seconds": seconds,
            "message": (lines[0] if lines else done.stderr.strip()[-200:])[:200]}


def build(tmp: Path) -> list[Case]:
    cases: list[Case] = []
    gallery = tmp / "g.sqlite"
    subprocess.run([sys.executable, "-m", "edgeface", "enroll", "obama", str(OBAMA), "--gallery", str(gallery)],
                   check=True, capture_output=True)
    export = tmp / "export.npz"
    subprocess.run([sys.executable, "-m", "edgeface", "gallery", "export", str(export), "--gallery", str(gallery)],
                   check=True, capture_output=True)
    pairs = tmp / "pairs.txt"
    lines = (SHARED / "data" / "lfw" / "pairs.txt").read_text().splitlines()
    pairs.write_text("1\t2\n" + "\n".join(lines[1:3] + lines[301:303]) + "\n")
    g = ["--gallery", str(gallery)]

    # images
    images = {
        "empty.jpg": b"", "truncated.jpg": OBAMA.read_bytes()[:3000], "random.jpg": os.urandom(5000),
        "text.png": b"hello, not an image", "gif.gif": b"GIF89a" + os.urandom(100),
    }
    for name, data in images.items():
        (tmp / name).write_bytes(data)
        cases.append(Case(f"enroll {name}", ["enroll", "x", str(tmp / name), *g], keep=[gallery]))
    cv2.imwrite(str(tmp / "bomb.tif"), np.zeros((8000, 8000), np.uint8), [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    cases.append(Case("enroll TIFF bomb", ["enroll", "x", str(tmp / "bomb.tif"), *g], keep=[gallery]))
    png = bytearray(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    png[16:24] = (30000).to_bytes(4, "big") * 2
    (tmp / "huge.png").write_bytes(bytes(png))
    cases.append(Case("detect PNG claiming 900 MP", ["detect", str(tmp / "huge.png")]))
    cases.append(Case("enroll a directory", ["enroll", "x", str(tmp), *g], keep=[gallery]))
    cases.append(Case("enroll missing photo", ["enroll", "x", str(tmp / "nope.jpg"), *g], keep=[gallery]))
    cases.append(Case("verify missing photo", ["verify", str(OBAMA), str(tmp / "nope.jpg")]))
    cases.append(Case("verify faceless photo", ["verify", str(OBAMA), str(tmp / "bomb.tif")]))

    # models
    (tmp / "empty.tflite").write_bytes(b"")
    (tmp / "random.tflite").write_bytes(b"\0\0\0\0TFL3" + os.urandom(4000))
    (tmp / "cut.tflite").write_bytes(PEER.read_bytes()[:50_000])
    (tmp / "m.keras").write_bytes(b"PK\x03\x04")
    for name in ("empty.tflite", "random.tflite", "cut.tflite", "m.keras"):
        cases.append(Case(f"recognize --model {name}", ["recognize", "--source", str(OBAMA), "--model",
                                                         str(tmp / name), *g], keep=[gallery]))
    cases.append(Case("info /dev/zero", ["info", "/dev/zero"], timeout=20))
    cases.append(Case("info a directory", ["info", str(tmp)]))
    peer = tmp / "peer.tflite"
    shutil.copyfile(PEER, peer)
    cases.append(Case("eval a model without manifest or flags", ["eval", str(peer), "--lfw-dir", str(LFW),
                                                                  "--pairs", str(pairs)]))
    for field_name, value in (("scale", '"abc"'), ("mean", "null"), ("mean", "1e308"), ("threshold", '"high"'),
                              ("threshold", "NaN"), ("size", "-3")):
        bad = tmp / f"bad-{field_name}-{abs(hash(value))}.tflite"
        shutil.copyfile(PEER, bad)
        manifest = {"format": "edgeface-manifest/1", "input": {"size": 112, "channels": "RGB", "mean": 0,
                                                                "scale": 1}}
        if field_name == "threshold":
            manifest["threshold"] = json.loads(value)
        else:
            manifest["input"][field_name] = json.loads(value)
        bad.with_suffix(".json").write_text(json.dumps(manifest))
        cases.append(Case(f"manifest {field_name}={value}", ["info", str(bad)]))
    nested = tmp / "nested.tflite"
    shutil.copyfile(PEER, nested)
    nested.with_suffix(".json").write_text("[" * 50_000 + "]" * 50_000)
    cases.append(Case("manifest nested 50,000 deep", ["info", str(nested)]))

    # option values
    src = tmp / "src" / "p"
    src.mkdir(parents=True)
    shutil.copyfile(OBAMA, src / "o.jpg")
    options = [
        ("--threshold -1", ["recognize", "--source", str(OBAMA), "--threshold", "-1", *g]),
        ("--threshold nan", ["recognize", "--source", str(OBAMA), "--threshold", "nan", *g]),
        ("--threshold 5", ["recognize", "--source", str(OBAMA), "--threshold", "5", *g]),
        ("--detect-size 0", ["recognize", "--source", str(OBAMA), "--detect-size", "0", *g]),
        ("--min-face -3", ["recognize", "--source", str(OBAMA), "--min-face", "-3", *g]),
        ("--max-frames -1", ["recognize", "--source", str(OBAMA), "--max-frames", "-1", *g]),
        ("--max-seconds -5", ["recognize", "--source", str(OBAMA), "--max-seconds", "-5", *g]),
        ("--detector haar", ["recognize", "--source", str(OBAMA), "--detector", "haar", *g]),
        ("--threads 0", ["bench", "--threads", "0"]),
        ("--threads ''", ["bench", "--threads", ""]),
        ("--threads abc", ["bench", "--threads", "abc"]),
        ("--runs 0", ["bench", "--runs", "0"]),
        ("prepare --limit -1", ["data", "prepare", str(tmp / "src"), str(tmp / "dst"), "--limit", "-1"]),
        ("prepare --workers 0", ["data", "prepare", str(tmp / "src"), str(tmp / "dst"), "--workers", "0"]),
        ("prepare --prefix ../../x", ["data", "prepare", str(tmp / "src"), str(tmp / "dst"), "--prefix", "../../x"]),
        ("prepare --layout bogus", ["data", "prepare", str(tmp / "src"), str(tmp / "dst"), "--layout", "bogus"]),
        ("optimize --target sizee", ["optimize", "m.keras", "--data", str(tmp), "--lfw-dir", str(LFW), "--pairs",
                                     str(pairs), "--target", "sizee"]),
        ("export --quantize int4", ["export", "m.keras", "-o", str(tmp / "o.tflite"), "--quantize", "int4"]),
        ("eval --save-threshold on 4 pairs", ["eval", str(tmp / "copy.tflite"), "--lfw-dir", str(LFW), "--pairs",
                                              str(pairs), "--save-threshold"]),
        ("enroll name ''", ["enroll", "", str(OBAMA), *g]),
        ("enroll name ../x", ["enroll", "../x", str(OBAMA), *g]),
        ("enroll name 10,000 chars", ["enroll", "x" * 10_000, str(OBAMA), *g]),
        ("no such command", ["bogus"]),
        ("missing --source", ["recognize", *g]),
    ]
    from edgeface.default_model import default_model_path

    shutil.copyfile(default_model_path(), tmp / "copy.tflite")
    cases += [Case(name, args, keep=[gallery, tmp / "copy.tflite"]) for name, args in options]
    ids = tmp / "ids.txt"
    ids.write_text("o.jpg ../../escaped\n")
    (tmp / "flat").mkdir()
    shutil.copyfile(OBAMA, tmp / "flat" / "o.jpg")
    cases.append(Case("prepare identity ../../escaped", ["data", "prepare", str(tmp / "flat"), str(tmp / "dst2"),
                                                         "--identities", str(ids)]))

    # galleries from elsewhere
    def export_with(name: str, **changes) -> Path:
        with np.load(export, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        for key, value in changes.items():
            if key == "header" and isinstance(value, np.ndarray):
                arrays["header"] = value
            elif key == "header":
                header = json.loads(str(arrays["header"]))
                header.update(value)
                arrays["header"] = np.array(json.dumps(header))
            else:
                arrays[key] = value(arrays[key]) if callable(value) else value
        path = tmp / f"{name}.npz"
        np.savez(path, **arrays)
        return path

    bad_exports = {
        "norm 1000": export_with("n1000", embeddings=lambda e: e * 1000),
        "NaN template": export_with("nan", embeddings=lambda e: np.full_like(e, np.nan)),
        "64-d into 128-d": export_with("d64", embeddings=lambda e: e[:, :64], header={"embedding_size": 64}),
        "embedding_size 0": export_with("d0", header={"embedding_size": 0}),
        "names are numbers": export_with("ni", names=lambda n: np.arange(len(n))),
        "header a JSON list": export_with("hl", header=np.array("[1, 2]")),
    }
    obj = tmp / "obj.npz"
    np.savez(obj, header=np.array([{"a": 1}], dtype=object))
    bad_exports["object array"] = obj
    for name, path in bad_exports.items():
        cases.append(Case(f"gallery import {name}", ["gallery", "import", str(path), *g], keep=[gallery]))
    cases.append(Case("gallery import a text file", ["gallery", "import", str(pairs), *g], keep=[gallery]))

    # damaged galleries
    for name, sql in (("schema_version x", "UPDATE meta SET value='x' WHERE key='schema_version'"),
                      ("embedding_size abc", "UPDATE meta SET value='abc' WHERE key='embedding_size'"),
                      ("short template blob", "UPDATE templates SET embedding=X'0000'")):
        damaged = tmp / f"damaged-{name.split()[0]}.sqlite"
        shutil.copyfile(gallery, damaged)
        db = sqlite3.connect(damaged)
        db.execute(sql)
        db.commit()
        db.close()
        for command in (["gallery", "list"], ["recognize", "--source", str(OBAMA)],
                        ["gallery", "export", str(tmp / "e.npz")]):
            cases.append(Case(f"{' '.join(command[:2])} on gallery with {name}",
                              [*command, "--gallery", str(damaged)]))
    (tmp / "notsqlite.sqlite").write_bytes(os.urandom(8192))
    cases.append(Case("gallery list on random bytes", ["gallery", "list", "--gallery", str(tmp / "notsqlite.sqlite")]))

    # sources and outputs
    cases.append(Case("recognize missing video", ["recognize", "--source", str(tmp / "nope.mp4"), *g]))
    cut = tmp / "cut.mp4"
    cut.write_bytes((MEDIA / "short_hamilton_clip.mp4").read_bytes()[:2000])
    cases.append(Case("recognize a 2 KB cut of a video", ["recognize", "--source", str(cut), *g]))
    cases.append(Case("recognize camera 99", ["recognize", "--source", "99", *g], timeout=90))
    cases.append(Case("recognize --output into a missing folder", ["recognize", "--source", str(OBAMA), "--output",
                                                                   str(tmp / "no" / "o.mp4"), *g]))
    broken = tmp / "only-broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"\xff\xd8 nope")
    cases.append(Case("recognize a folder with only unreadable images", ["recognize", "--source", str(broken), *g]))
    cases.append(Case("recognize --events ftp://", ["recognize", "--source", str(OBAMA), "--events", "ftp://x/y",
                                                    *g]))
    return cases


def main() -> None:
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run(case) for case in build(Path(tmp))]
    counts = Counter(r["outcome"] for r in results)
    for r in results:
        if r["outcome"] != "ok":
            print(f"{r['outcome']:10s} {r['case']}: {r.get('message', '')}", file=sys.stderr)
    print(dict(counts), file=sys.stderr)
    save("hostile_inputs.json", {"cases": len(results), "outcomes": dict(counts), "results": results}, started)


if __name__ == "__main__":
    main()
