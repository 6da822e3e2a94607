"""Soak: `edgeface recognize` on the shared clip, looped for 10 minutes, resident memory sampled every 5 s.
Passes when RSS after warm-up (the first minute) grows by less than 5 %. -> results/soak.json

    python benchmarks/soak.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import save


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--media", default="../shared/data/media")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=60.0)
    args = parser.parse_args()
    media = Path(args.media)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        gallery = str(Path(tmp) / "g.sqlite")
        edgeface = [sys.executable, "-m", "edgeface"]
        subprocess.run([*edgeface, "enroll", "--dir", str(media / "gallery"), "--gallery", gallery], check=True,
                       capture_output=True)
        seconds = args.minutes * 60
        cmd = [*edgeface, "recognize", "--source", str(media / "short_hamilton_clip.mp4"), "--gallery", gallery,
               "--loop", "--max-seconds", str(seconds), "--threads", "1", "--json"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        samples = []
        t0 = time.time()
        events = 0
        def drain() -> None:
            nonlocal events
            for _ in proc.stdout:  # type: ignore[union-attr]
                events += 1

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        while proc.poll() is None:
            samples.append((round(time.time() - t0, 1), rss_mb(proc.pid)))
            time.sleep(5)
        reader.join(timeout=10)
    after = [m for t, m in samples if t >= args.warmup and m > 0]
    growth = (max(after) - after[0]) / after[0] if after else None
    print(f"RSS after warm-up {after[0]:.1f} MB -> max {max(after):.1f} MB: growth {100 * growth:.2f} %")
    save("soak.json", {"recognize_command": "edgeface " + " ".join(cmd[3:]), "minutes": args.minutes, "events": events,
                       "rss_mb_samples": samples, "rss_after_warmup_mb": after[0], "rss_max_mb": max(after),
                       "growth": growth, "limit": 0.05, "passed": growth is not None and growth < 0.05}, started)


if __name__ == "__main__":
    main()
