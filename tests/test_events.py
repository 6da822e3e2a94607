"""Recognition events to a JSON-lines file, a real HTTP server and a real mosquitto broker, debounced per track;
dead endpoints never stall the frame loop."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import BLOCK_TF, CLI_LAUNCHER, MEDIA, needs_shared, run_cli

from edgeface.recognize.events import Debouncer
from edgeface.recognize.results import RecognisedFace

CLIP = MEDIA / "short_hamilton_clip.mp4"


def face(track: int | None, name: str | None = None, score: float | None = 0.3) -> RecognisedFace:
    return RecognisedFace((0.0, 0.0, 10.0, 10.0), (), 0.9, 0.1, name=name, score=score, track=track)


def test_a_person_standing_at_the_door_is_one_arrival_and_one_departure():
    d = Debouncer()
    events = []
    for _ in range(25):  # one second of one face
        events += d.update([face(7, "alice", 0.8)], "cam", 0)
    events += d.update([face(7, "bob", 0.7)], "cam", 0)  # the smoothed name changes: announced
    events += d.update([face(7, None, 0.6)], "cam", 0)  # bob's match dips for a frame: still bob
    events += d.update([face(None)], "cam", 0)  # a face turned away is never announced
    for _ in range(4):  # frames without the face: only the tracker says when its track has ended
        events += d.update([], "cam", 0)
    assert [e["event"] for e in events].count("left") == 1  # alice's, when the track turned into bob
    events += d.update([], "cam", 0, ended=[7])
    # the track turns into bob: alice leaves before bob arrives, never two arrivals without a departure
    assert [(e["event"], e["name"]) for e in events] == [("arrived", "alice"), ("left", "alice"), ("arrived", "bob"),
                                                         ("left", "bob")]
    assert events[-1]["seconds"] >= 0


def test_a_person_on_two_tracks_arrives_once_and_unknown_faces_are_optional():
    """A track that splits (the tracker lost the face for a moment) keeps the person present; they leave when the
    last of their tracks ends. Unknown faces are announced per track, or not at all."""
    for unknown in (True, False):
        d = Debouncer(unknown=unknown)
        events = d.update([face(1, "alice", 0.9), face(5)], "cam", 0, media_time=0.0)
        events += d.update([face(2, "alice", 0.9)], "cam", 1, media_time=0.04)  # a second track of alice
        events += d.update([face(2, "alice", 0.9)], "cam", 2, ended=[1])  # track 1 ends; alice is still on track 2
        assert [(e["event"], e["name"]) for e in events if e["name"] == "alice"] == [("arrived", "alice")]
        events += d.update([], "cam", 3, media_time=1.0, ended=[2, 5])
        alice = [(e["event"], e.get("media_time")) for e in events if e["name"] == "alice"]
        assert alice == [("arrived", 0.0), ("left", 1.0)]
        strangers = [e["event"] for e in events if e["name"] is None]
        assert strangers == (["arrived", "left"] if unknown else [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ev") / "g.sqlite"
    assert run_cli("enroll", "--dir", str(MEDIA / "gallery"), "--gallery", str(path)).returncode == 0
    return path


def recognize(gallery: Path, *extra: str, timeout: int = 120) -> dict:
    result = run_cli("recognize", "--source", str(CLIP), "--gallery", str(gallery), "--json", *extra, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])["summary"]


@needs_shared
def test_a_stranger_is_announced_only_once_their_track_is_confirmed():
    """A face seen for a blink (a track that never settles as nobody) is no stranger arriving and leaving 0.1 s
    later; one that stays unknown for as many frames as a name needs arrives and leaves once."""
    d = Debouncer()
    blink = [d.update([replace(face(3), settled=False)], "cam", k) for k in range(2)]
    blink.append(d.update([], "cam", 2, ended=[3]))
    assert [e for frame in blink for e in frame] == []
    events = d.update([replace(face(4), settled=False)], "cam", 3)
    events += d.update([replace(face(4), settled=False)], "cam", 4)
    events += d.update([face(4)], "cam", 5)  # settled: nobody for ``confirm`` frames
    events += d.update([face(4)], "cam", 6)
    events += d.update([], "cam", 7, ended=[4])
    assert [(e["event"], e["name"], e["frame"]) for e in events] == [("arrived", None, 5), ("left", None, 6)]


def test_the_confirmation_settles_strangers_as_it_settles_names():
    from edgeface.recognize.tracking import Tracker

    tracker = Tracker()
    ids, _ = tracker.update(np.array([[0, 0, 10, 10]], np.float32), [np.ones(4, np.float32)])
    assert [tracker.confirmed(ids[0], None, 3) for _ in range(3)] == [False, False, True]
    assert [tracker.confirmed(ids[0], "alice", 3) for _ in range(3)] == [False, False, True]


def test_events_file_gets_debounced_arrivals_and_departures(gallery: Path, tmp_path: Path):
    out = tmp_path / "events.jsonl"
    summary = recognize(gallery, "--max-frames", "120", "--events", str(out))
    events = [json.loads(line) for line in out.read_text().splitlines()]
    arrived = [e for e in events if e["event"] == "arrived"]
    left = [e for e in events if e["event"] == "left"]
    assert arrived and len(arrived) < summary["faces"] / 5  # not one per frame
    assert {e["track"] for e in left} == {e["track"] for e in arrived}  # every arrival leaves
    assert all({"time", "source", "name", "score", "box", "track"} <= set(e) for e in events)
    assert summary["events"] == [{"sink": str(out), "sent": len(events), "dropped": 0, "failed": 0}]


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@needs_shared
def test_webhook_receives_every_event_from_a_real_http_server(gallery: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        Hook.received = []
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        summary = recognize(gallery, "--max-frames", "80", "--events", url)
    finally:
        server.shutdown()
    stats = summary["events"][0]
    assert stats["sent"] == len(Hook.received) > 0 and stats["failed"] == stats["dropped"] == 0
    assert {e["event"] for e in Hook.received} == {"arrived", "left"}


@needs_shared
def test_a_dead_webhook_never_stalls_recognition(gallery: Path):
    url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    started = time.monotonic()
    summary = recognize(gallery, "--max-frames", "120", "--events", url)
    assert summary["frames"] == 120
    stats = summary["events"][0]
    assert stats["sent"] == 0 and stats["failed"] + stats["dropped"] > 0 and "last_error" in stats
    assert time.monotonic() - started < 60


def mosquitto(port: int) -> subprocess.Popen:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it)")
    proc = subprocess.Popen([exe, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.1)
    proc.kill()
    pytest.fail("mosquitto did not start")


def subscriber(port: int, topic: str) -> tuple[object, list[dict]]:
    import paho.mqtt.client as mqtt

    received: ClassVar[list[dict]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, msg: received.append(json.loads(msg.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    time.sleep(0.5)
    return client, received


@needs_shared
def test_events_reach_a_real_mosquitto_broker(gallery: Path):
    port = free_port()
    broker = mosquitto(port)
    try:
        client, received = subscriber(port, "edgeface/door")
        summary = recognize(gallery, "--max-frames", "100", "--events", f"mqtt://127.0.0.1:{port}/edgeface/door")
        time.sleep(0.5)
        client.loop_stop()
    finally:
        broker.kill()
        broker.wait()
    stats = summary["events"][0]
    assert stats["sent"] > 0 and stats["failed"] == stats["dropped"] == 0
    assert len(received) == stats["sent"]
    assert {e["event"] for e in received} == {"arrived", "left"}


@needs_shared
def test_a_broker_that_dies_mid_run_costs_events_not_frames(gallery: Path):
    port = free_port()
    broker = mosquitto(port)
    code = BLOCK_TF + CLI_LAUNCHER
    recogniser = subprocess.Popen([sys.executable, "-c", code, "recognize", "--source", str(CLIP), "--loop",
                                   "--max-seconds", "8", "--gallery", str(gallery), "--json", "--events",
                                   f"mqtt://127.0.0.1:{port}/edgeface/door"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    broker.kill()  # the broker dies while faces keep coming
    broker.wait()
    stdout, stderr = recogniser.communicate(timeout=60)
    assert recogniser.returncode == 0, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])["summary"]
    stats = summary["events"][0]
    assert summary["frames"] > 100  # recognition went on
    assert stats["sent"] > 0 and stats["failed"] + stats["dropped"] > 0
