"""`edgeface serve` under load and over time, on the demo clip looped as its camera (unpaced: the loop runs as fast
as the CPU lets it, so any cost a client puts on it shows as lost FPS).

    python benchmarks/serve_load.py load [--rounds 3 --seconds 10]   -> results/serve_load.json
    python benchmarks/serve_load.py soak [--minutes 10]              -> results/serve_soak.json

load: the camera's FPS with no viewer, against the same with viewers (MJPEG live view + event stream, as the page
      holds them open) and one more viewer on a bad link (1 KB every 0.2 s), interleaved A/B rounds so machine
      noise falls on both; the normal viewer's frame rate beside the slow one's; then 50 concurrent /api/recognize
      (every answer, p50/p99/max latency) and the camera FPS meanwhile.
soak: serve + one live viewer + the event stream + an upload cycle every 5 s (recognise a probe, enrol a photo,
      remove it): resident memory sampled every 10 s; passes when RSS after the first minute grows by < 5 %.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import MEDIA, save

CLIP = MEDIA / "short_hamilton_clip.mp4"
PROBE = MEDIA / "probes" / "two_people.jpg"


def start(folder: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "edgeface", "serve", "--port", "0", "--gallery",
                                str(folder / "g.sqlite"), "--source", str(CLIP), "--loop", "--camera", "clip"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = re.search(r"http://\S+/", process.stdout.readline()).group(0)
    client = httpx.Client(base_url=url, timeout=60)
    while client.get("/api/health").json()["camera"]["state"] != "running":
        time.sleep(0.2)
    for person in sorted((MEDIA / "gallery").iterdir()):
        files = [("image", (p.name, p.read_bytes())) for p in sorted(person.iterdir())]
        client.post(f"/api/people/{person.name}/faces", files=files)
    return process, url


def frames(client: httpx.Client) -> tuple[int, float]:
    return client.get("/api/health").json()["camera"]["frames"], time.perf_counter()


def camera_fps(client: httpx.Client, seconds: float) -> float:
    (f0, t0) = frames(client)
    time.sleep(seconds)
    (f1, t1) = frames(client)
    return (f1 - f0) / (t1 - t0)


def viewer(url: str, stop: threading.Event, counts: dict) -> None:
    """What the open page holds: the MJPEG live view and the event stream."""
    def events() -> None:
        with httpx.stream("GET", url + "api/events/stream", timeout=None) as response:
            for _ in response.iter_lines():
                if stop.is_set():
                    return

    threading.Thread(target=events, daemon=True).start()
    with httpx.stream("GET", url + "api/stream.mjpeg", timeout=None) as response:
        for chunk in response.iter_bytes():
            counts["bytes"] += len(chunk)
            counts["frames"] += chunk.count(b"--frame")
            if stop.is_set():
                return


def slow_viewer(url: str, stop: threading.Event, counts: dict) -> None:
    """A live-view client on a bad link: 1 KB every 0.2 s. It should get few frames and cost nobody else any."""
    with httpx.stream("GET", url + "api/stream.mjpeg", timeout=None) as response:
        for chunk in response.iter_bytes(1024):
            counts["bytes"] += len(chunk)
            counts["frames"] += chunk.count(b"--frame")
            time.sleep(0.2)
            if stop.is_set():
                return


def load(args: argparse.Namespace, folder: Path) -> dict:
    process, url = start(folder)
    client = httpx.Client(base_url=url, timeout=120)
    try:
        camera_fps(client, 5)  # warm-up
        rounds = []
        for _ in range(args.rounds):
            alone = camera_fps(client, args.seconds)
            stop, counts = threading.Event(), {"bytes": 0, "frames": 0}
            slow = {"bytes": 0, "frames": 0}
            threads = [threading.Thread(target=viewer, args=(url, stop, counts), daemon=True)
                       for _ in range(args.viewers)]
            threads.append(threading.Thread(target=slow_viewer, args=(url, stop, slow), daemon=True))
            for t in threads:
                t.start()
            time.sleep(1)
            shown = counts["frames"]
            watched = camera_fps(client, args.seconds)
            shown = counts["frames"] - shown
            stop.set()
            rounds.append({"fps_alone": round(alone, 2), "fps_watched": round(watched, 2),
                           "ratio": round(watched / alone, 3),
                           "stream_fps_per_viewer": round(shown / args.seconds / args.viewers, 2),
                           "slow_viewer_frames": slow["frames"]})
            time.sleep(1)
        body = PROBE.read_bytes()

        def one(_: int) -> tuple[int, float]:
            t = time.perf_counter()
            response = httpx.post(url + "api/recognize", content=body, timeout=300)
            return response.status_code, time.perf_counter() - t

        before = frames(client)
        with concurrent.futures.ThreadPoolExecutor(args.concurrent) as pool:
            answers = list(pool.map(one, range(args.concurrent)))
        after = frames(client)
        during = (after[0] - before[0]) / (after[1] - before[1])
        alone = camera_fps(client, args.seconds)
        latencies = sorted(s for _, s in answers)
        return {"viewers": args.viewers, "rounds": rounds,
                "ratio_median": statistics.median(r["ratio"] for r in rounds),
                "recognize_burst": {
                    "requests": args.concurrent, "ok": sum(code == 200 for code, _ in answers),
                    "errors": sorted({code for code, _ in answers if code != 200}),
                    "p50_s": round(latencies[len(latencies) // 2], 3),
                    "p99_s": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 3),
                    "max_s": round(latencies[-1], 3), "camera_fps_during": round(during, 2),
                    "camera_fps_after": round(alone, 2)}}
    finally:
        process.terminate()
        process.wait(30)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def soak(args: argparse.Namespace, folder: Path) -> dict:
    process, url = start(folder)
    client = httpx.Client(base_url=url, timeout=120)
    stop, counts = threading.Event(), {"bytes": 0, "frames": 0}
    threading.Thread(target=viewer, args=(url, stop, counts), daemon=True).start()
    samples, uploads, failures = [], 0, 0
    started = time.time()
    photo = MEDIA / "probes" / "obama-480p.jpg"  # one face, and not a photo of the gallery (those are skipped)
    try:
        next_sample = started
        while time.time() - started < args.minutes * 60:
            ok = client.post("/api/recognize", content=PROBE.read_bytes()).status_code == 200
            ok &= client.post("/api/people/visitor/faces", files={"image": (photo.name, photo.read_bytes())}
                              ).status_code == 200
            ok &= client.delete("/api/people/visitor").status_code == 200
            uploads += 1
            failures += not ok
            if time.time() >= next_sample:
                samples.append({"t_s": round(time.time() - started, 1), "rss_mb": round(rss_mb(process.pid), 1),
                                "camera_frames": client.get("/api/health").json()["camera"]["frames"]})
                next_sample += 10
            time.sleep(5)
        health = client.get("/api/health").json()
    finally:
        stop.set()
        process.terminate()
        process.wait(30)
    warm = [s["rss_mb"] for s in samples if s["t_s"] >= 60] or [samples[-1]["rss_mb"]]
    growth = (warm[-1] - warm[0]) / warm[0]
    return {"minutes": args.minutes, "samples": samples, "upload_cycles": uploads, "failed_cycles": failures,
            "stream_frames_received": counts["frames"], "camera_state_at_end": health["camera"]["state"],
            "rss_after_warmup_mb": warm[0], "rss_end_mb": warm[-1], "growth": round(growth, 4),
            "passed": growth < 0.05 and failures == 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["load", "soak"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--concurrent", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        result = (load if args.mode == "load" else soak)(args, Path(tmp))
    print(result if args.mode == "load" else {k: v for k, v in result.items() if k != "samples"})
    save(f"serve_{args.mode}.json", result, started)


if __name__ == "__main__":
    main()
