"""edgeface on emulated arm64 (Raspberry Pi OS 64-bit user space) beside x86, in one run.

    sudo deploy/emulate-pi.sh                      # once: the arm64 root with edgeface installed by install.sh
    python benchmarks/arm64.py [--root ROOT] [--limit N]
-> results/arm64.json

Steps, each recorded with its command:
  1. ``edgeface info`` and ``edgeface bench`` inside the root (emulated latency: recorded, never quoted);
  2. the aligned crops of every LFW View 2 image (aligned once, on x86) embedded by the shipped int8 and float
     models on arm64 and on x86: cosine between the two embeddings of each crop (min, median);
  3. LFW View 2 accuracy of each model from the arm64 embeddings beside the x86 ones;
  4. ``edgeface enroll`` + ``recognize`` on the shared gallery and probes on both: the same names?
  5. ``systemd-analyze verify`` of the unit file and how far ``install.sh`` got.
Emulation runs the int8 model at ~0.3 s a face, so the agreement uses the first ``--agree`` crops (float32, int8 on
XNNPACK and int8 on the reference kernels) and only the int8 model embeds all 7,701 for LFW.
``--limit N`` aligns only the first N images (a smoke run; LFW accuracy then is not computed).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# not taken from common.py: this file is also copied alone into the arm64 root and run there (its "embed" mode)
SHARED = Path(os.environ.get("EDGEFACE_SHARED", HERE.parents[1] / "shared"))
LFW = SHARED / "data" / "lfw" / "lfw-deepfunneled"
PAIRS = SHARED / "data" / "lfw" / "pairs.txt"
MEDIA = SHARED / "data" / "media"
WORK = "/tmp/edgeface-arm64"  # inside the root
MODELS = {"int8": "edgeface-default.tflite", "float32": "edgeface-default-float32.tflite"}


def embed_here(crops_file: str, out_file: str, variants: list[str], limit: int) -> None:
    """Runs on either machine: embed the first ``limit`` crops with each variant (``int8``, ``float32``;
    ``int8-reference``: the int8 file on LiteRT's built-in optimized kernels instead of XNNPACK; ``int8-portable``:
    on its plain C reference kernels, BUILTIN_REF); save {variant: embeddings}."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgeface.default_model import default_model_path
    from edgeface.runtime.interpreter import Model
    from edgeface.vision.embed import load_embedder

    crops = np.load(crops_file, mmap_mode="r", allow_pickle=False)[:limit]
    out = {}
    for variant in variants:
        path = default_model_path().with_name(MODELS[variant.split("-")[0]])
        embedder = load_embedder(path)
        if variant.endswith("-reference"):
            embedder.model = Model(path, xnnpack=False)
        elif variant.endswith("-portable"):
            embedder.model.interpreter = Interpreter(model_path=str(path),
                                                     experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            embedder.model.interpreter.allocate_tensors()
        t0 = time.perf_counter()
        out[variant] = np.concatenate([embedder.embed(np.asarray(crops[i : i + 256]))
                                       for i in range(0, len(crops), 256)])
        out[f"{variant}_seconds"] = np.array(time.perf_counter() - t0)
    np.savez(out_file, **out)


def in_root(root: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    """One command in the arm64 root through deploy/emulate-pi.sh (mounts, environment, /work/shared read-only)."""
    full = ["bash", str(HERE.parent / "deploy" / "emulate-pi.sh"), str(root), "run", *cmd]
    print("$ [arm64]", shlex.join(cmd), file=sys.stderr, flush=True)
    done = subprocess.run(full, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"arm64 command failed ({done.returncode}): {shlex.join(cmd)}\n{done.stderr[-2000:]}")
    return done


def on_x86(*cmd: str) -> subprocess.CompletedProcess:
    print("$ [x86]", shlex.join(cmd), file=sys.stderr, flush=True)
    return subprocess.run([sys.executable, "-m", *cmd], capture_output=True, text=True, check=True,
                          env={**os.environ, "EDGEFACE_QUIET": "1"})


def aligned_lfw_crops(limit: int | None) -> tuple[np.ndarray, object]:
    """Every View 2 image aligned the way `edgeface eval` aligns it for the shipped model (detection cached)."""
    from edgeface.default_model import default_model_path
    from edgeface.evaluate.lfw import parse_pairs
    from edgeface.progress import track
    from edgeface.vision.align import align_face, centre_face
    from edgeface.vision.detect import FaceFinder, main_face
    from edgeface.vision.embed import load_embedder
    from edgeface.vision.image import read_image

    pairs = parse_pairs(PAIRS)
    names = pairs.images[:limit] if limit else pairs.images
    finder = FaceFinder(alignment=load_embedder(default_model_path()).alignment)
    crops = []
    for name in track(names, description="aligning LFW on x86"):
        image = read_image(LFW / name)
        faces = finder.find(image)
        crops.append(align_face(image, main_face(faces, image.shape) if faces else centre_face(image)))
    return np.stack(crops), pairs


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return {"cosine_min": float(cos.min()), "cosine_median": float(np.median(cos)),
            "cosine_p01": float(np.percentile(cos, 1)), "n": len(cos)}


def names_of(recognize_stdout: str) -> list[tuple[str, str]]:
    """(source file, name) of every face event, sorted."""
    rows = []
    for line in recognize_stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if "name" in event:
                rows.append((Path(str(event.get("source", ""))).name, event["name"]))
    return sorted(rows)


def recognise_both(root: Path, host: Path) -> dict:
    pi_gallery, x86_gallery = f"{WORK}/gallery.sqlite", host / "gallery.sqlite"
    for g in (root / pi_gallery.lstrip("/"), x86_gallery):
        g.unlink(missing_ok=True)
    media = "/work/shared/data/media"
    in_root(root, "edgeface", "enroll", "--dir", f"{media}/gallery", "--gallery", pi_gallery)
    pi = in_root(root, "edgeface", "recognize", "--source", f"{media}/probes", "--gallery", pi_gallery, "--json")
    on_x86("edgeface", "enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(x86_gallery))
    x86 = on_x86("edgeface", "recognize", "--source", str(MEDIA / "probes"), "--gallery", str(x86_gallery), "--json")
    pi_names, x86_names = names_of(pi.stdout), names_of(x86.stdout)
    return {"arm64": pi_names, "x86": x86_names, "same_names": pi_names == x86_names}


def main() -> None:
    sys.path.insert(0, str(HERE))
    from common import machine, save

    from edgeface.evaluate.metrics import verification_report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get(
        "EDGEFACE_PI_ROOT", Path.home() / ".cache" / "edgeface" / "pi-root")))
    parser.add_argument("--limit", type=int, default=None, help="align only the first N images (smoke run)")
    parser.add_argument("--agree", type=int, default=500, help="crops compared across machines for every variant")
    args = parser.parse_args()
    started = time.time()
    root: Path = args.root
    if not (root / "opt/edgeface/venv/bin/edgeface").exists():
        raise SystemExit(f"no edgeface in {root}: run sudo deploy/emulate-pi.sh {root} first")
    host = root / WORK.lstrip("/")
    host.mkdir(parents=True, exist_ok=True)

    result: dict = {"root": str(root)}
    uname = in_root(root, "uname", "-m").stdout.strip()
    pyver = in_root(root, "python3", "--version").stdout.strip()
    result["arm64"] = {"uname_m": uname, "python": pyver,
                       "os": in_root(root, "sh", "-c", ". /etc/os-release; echo $PRETTY_NAME").stdout.strip(),
                       "pip_freeze": in_root(root, "pip", "freeze").stdout.split()}
    result["info"] = json.loads(in_root(root, "edgeface", "info", "--json").stdout)
    result["bench_emulated_not_a_pi"] = json.loads(in_root(root, "edgeface", "bench", "--runs", "20", "--warmup",
                                                           "2", "--json").stdout)

    crops, pairs = aligned_lfw_crops(args.limit)
    np.save(host / "crops.npy", crops)
    shutil.copy(__file__, host / "arm64.py")  # this very script does the embedding on both sides
    agree = min(args.agree, len(crops))
    variants = ["int8", "float32", "int8-reference"]
    runs = {"agree": (variants, agree)}
    if args.limit is None:
        runs["lfw"] = (["int8"], len(crops))
    arm, x86, seconds = {}, {}, {}
    for run, (names, n) in runs.items():
        t0 = time.perf_counter()
        in_root(root, "python", f"{WORK}/arm64.py", "embed", f"{WORK}/crops.npy", f"{WORK}/arm64-{run}.npz",
                ",".join(names), str(n))
        seconds[run] = round(time.perf_counter() - t0, 1)
        embed_here(str(host / "crops.npy"), str(host / f"x86-{run}.npz"), names, n)
        arm[run] = np.load(host / f"arm64-{run}.npz", allow_pickle=False)
        x86[run] = np.load(host / f"x86-{run}.npz", allow_pickle=False)
    result["crops"] = len(crops)
    result["arm64_embed_wall_seconds_emulated"] = seconds
    result["agreement"] = {v: agreement(arm["agree"][v], x86["agree"][v]) for v in variants}
    if "lfw" in runs:
        lfw = {}
        for where, emb in (("arm64", arm["lfw"]["int8"]), ("x86", x86["lfw"]["int8"])):
            scores = np.sum(emb[pairs.left] * emb[pairs.right], axis=1)
            rep = verification_report(scores, pairs.same, pairs.fold)
            lfw[f"int8_{where}"] = {k: rep[k] for k in ("accuracy", "accuracy_se", "roc_auc", "tar_at_far")}
        lfw["int8_delta_pp"] = 100 * (lfw["int8_arm64"]["accuracy"] - lfw["int8_x86"]["accuracy"])
        lfw["int8_lfw_cosine"] = agreement(arm["lfw"]["int8"], x86["lfw"]["int8"])
        result["lfw"] = lfw
    result["recognize"] = recognise_both(root, host)
    unit = in_root(root, "systemd-analyze", "verify", "/etc/systemd/system/edgeface.service", check=False)
    result["systemd_analyze_verify"] = {"returncode": unit.returncode,
                                        "output": (unit.stdout + unit.stderr).strip().splitlines()}
    log = (root / "opt" / "install.log")
    result["install_sh_tail"] = log.read_text().strip().splitlines()[-4:] if log.exists() else None
    result["x86"] = machine()
    save("arm64.json" if args.limit is None else "arm64_smoke.json", result, started)
    print(json.dumps({k: result[k] for k in ("agreement", "recognize")} | {"lfw": result.get("lfw")}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "embed":
        embed_here(sys.argv[2], sys.argv[3], sys.argv[4].split(","), int(sys.argv[5]))
    else:
        main()
