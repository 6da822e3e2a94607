"""What event delivery costs the frame loop: `edgeface recognize` on the Hamilton clip, one core, with no events,
with events to a live mosquitto broker, and with events to a broker that is not there (connection refused on
every retry). Runs alternate, 3 rounds; the median FPS of each is compared.

    python benchmarks/archive/events_overhead.py        (needs Debian's mosquitto: apt-get install mosquitto)
-> results/events_overhead.json
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py
from common import MEDIA, save


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_core(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "EDGEFACE_QUIET": "1"}
    done = subprocess.run(["taskset", "-c", "0", sys.executable, "-m", "edgeface", *args], capture_output=True,
                          text=True, env=env, check=True)
    return json.loads(done.stdout.splitlines()[-1])["summary"]


def main() -> None:
    started = time.time()
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    live_port, dead_port = free_port(), free_port()
    broker = subprocess.Popen([exe, "-p", str(live_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    configs = {"no events": [], "live broker": ["--events", f"mqtt://127.0.0.1:{live_port}/edgeface"],
               "dead broker": ["--events", f"mqtt://127.0.0.1:{dead_port}/edgeface"]}
    fps: dict[str, list[float]] = {k: [] for k in configs}
    stats: dict[str, list] = {k: [] for k in configs}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            gallery = str(Path(tmp) / "g.sqlite")
            subprocess.run([sys.executable, "-m", "edgeface", "enroll", "--dir", str(MEDIA / "gallery"), "--gallery",
                            gallery], check=True, capture_output=True)
            for _ in range(3):
                for name, extra in configs.items():
                    summary = one_core("recognize", "--source", str(MEDIA / "short_hamilton_clip.mp4"),
                                       "--gallery", gallery, "--json", *extra)
                    fps[name].append(summary["fps"])
                    stats[name].append(summary.get("events"))
                    print(name, summary["fps"], summary.get("events"), file=sys.stderr, flush=True)
    finally:
        broker.kill()
    median = {k: float(np.median(v)) for k, v in fps.items()}
    result = {name: {"fps_runs": fps[name], "fps_median": median[name],
                     "fps_vs_no_events": round(median[name] / median["no events"], 4), "events": stats[name][-1]}
              for name in configs}
    save("events_overhead.json", {"source": "short_hamilton_clip.mp4 (275 frames), one core", "results": result,
                                  "target": "a dead broker costs the frame loop less than 1 % FPS"}, started)
    for name, row in result.items():
        print(f"{name}: {row['fps_median']:.1f} FPS ({row['fps_vs_no_events']:.3f}x)")


if __name__ == "__main__":
    main()
