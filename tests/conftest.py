"""Shared fixtures: real data from ../shared (read-only), caches in a temp dir, tiny pairs files."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeface.data.shared import DATA, LFW, MEDIA, PAIRS, PEER_FLAGS, PEER_FLOAT, PEER_UINT8, SHARED  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]

needs_shared = pytest.mark.skipif(not PAIRS.exists(), reason=f"the shared data is not at {SHARED} "
                                  "(set EDGEFACE_SHARED); tests on real faces skipped")


def pytest_configure(config: pytest.Config) -> None:
    """In CI a missing ../shared is a failure, never a quiet run of the tests that happen not to need it."""
    if os.environ.get("CI", "").lower() == "true" and not PAIRS.exists():
        raise pytest.UsageError(f"CI=true but the shared data is missing ({PAIRS} not found): "
                                "every test on real faces would be skipped")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Caches and user data go to a temp dir, never to ~/.cache or beside the shared data."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("EDGEFACE_CACHE", str(root / "cache"))
    monkeypatch.setenv("EDGEFACE_HOME", str(root / "home"))
    monkeypatch.setenv("EDGEFACE_QUIET", "1")
    return root


def small_pairs(path: Path, folds: int = 2, per: int = 3) -> Path:
    """A View-2-shaped pairs file: the first ``per`` same and different pairs of the first ``folds`` folds."""
    lines = PAIRS.read_text().splitlines()
    total_per = int(lines[0].split()[1])
    out = [f"{folds}\t{per}"]
    for f in range(folds):
        base = 1 + f * 2 * total_per
        out += lines[base : base + per] + lines[base + total_per : base + total_per + per]
    path.write_text("\n".join(out) + "\n")
    return path


BLOCK_TF = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow.") or name in ("tf_keras", "keras"):
            raise ImportError("tensorflow is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


CLI_LAUNCHER = "from edgeface.cli import main\nsys.argv = ['edgeface', *sys.argv[1:]]\nmain()\n"


def run_cli(*args: str, block_tf: bool = True, env: dict | None = None, timeout: int = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``edgeface ARGS`` in a fresh interpreter, optionally with TensorFlow made unimportable."""
    code = (BLOCK_TF if block_tf else "") + CLI_LAUNCHER
    if not block_tf:
        code = "import sys\n" + code
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("edgeface: error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def prepared_orl(root: Path, people: int = 6) -> Path:
    """The first ``people`` ORL subjects (10 photos each) copied to ``root/src`` and prepared by edgeface into
    ``root/faces``: real aligned faces for training-half tests."""
    from edgeface.data.prepare import prepare

    src, faces = root / "src", root / "faces"
    for k in range(1, people + 1):
        (src / f"s{k}").mkdir(parents=True, exist_ok=True)
        for img in sorted((DATA / "orl" / f"s{k}").glob("*.png")):
            (src / f"s{k}" / img.name).write_bytes(img.read_bytes())
    summary = prepare(src, faces, workers=1)
    assert summary.get("ok", 0) >= 9 * people
    return faces


PROFILE_FRAME = 250  # short_hamilton_clip.mp4: Barack Obama in the audience, in profile


def clip_frame(index: int):
    """One BGR frame of the shared Hamilton clip (decoded with OpenCV, as the recognition loop does)."""
    import cv2

    cap = cv2.VideoCapture(str(MEDIA / "short_hamilton_clip.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = cap.read()
    cap.release()
    assert ok, f"cannot read frame {index} of the clip"
    return frame


def wait_for_port(port: int, process: subprocess.Popen, what: str, seconds: float = 10) -> None:
    """Until a server just started answers on a loopback port; fails the test naming it if it never does."""
    import socket
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"{what} did not start")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """``edgeface serve`` in its own interpreter (TensorFlow unimportable), its stderr kept in a file."""

    def __init__(self, tmp: Path, *args: str, files: int | None = None) -> None:
        self.log = tmp / f"serve-{time.monotonic_ns()}.log"

        def limits() -> None:  # a systemd service's default: 1,024 descriptors soft (serve raises it itself)
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

        with open(self.log, "w") as err:
            self.process = subprocess.Popen([sys.executable, "-c", BLOCK_TF + CLI_LAUNCHER, "serve", "--port", "0",
                                             *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=tmp,
                                            preexec_fn=limits)
        line = self.process.stdout.readline()
        if "http://" not in line:
            self.process.kill()
            raise AssertionError(f"serve did not start: {line}{self.log.read_text()}")
        self.url = line.split()[2]
        self.host = self.url.split("//")[1].rstrip("/")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code, self.log.read_text()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    port = free_port()
    conf = tmp_path_factory.mktemp("broker") / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, "mosquitto")
    yield port
    proc.kill()
    proc.wait()


def retained(port: int, pattern: str) -> dict[str, bytes]:
    """What a subscriber arriving now is handed: the broker's retained messages under ``pattern``."""
    import paho.mqtt.client as mqtt

    seen: dict[str, bytes] = {}
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: seen.__setitem__(msg.topic, msg.payload) if msg.retain else None
    client.connect("127.0.0.1", port)
    client.subscribe(pattern, qos=1)
    client.loop_start()
    time.sleep(1.0)
    client.loop_stop()
    client.disconnect()
    return seen
