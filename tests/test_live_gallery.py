"""Home Assistant follows the gallery while edgeface runs, against a real mosquitto: people enrolled, removed and
renamed through ``serve`` or the CLI reach the running recogniser and their MQTT discovery entities within seconds;
what is retained for nobody enrolled is cleared on start; each camera has its own availability."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import pytest
from conftest import BLOCK_TF, CLI_LAUNCHER, MEDIA, Served, clip_frame, needs_shared, retained, run_cli

pytestmark = needs_shared
CLIP = MEDIA / "short_hamilton_clip.mp4"
OBAMA = MEDIA / "gallery" / "obama" / "obama.jpg"
FOLLOW_S = 5.0  # the promise: a gallery change reaches the recogniser and Home Assistant within 5 s


class Listener:
    """A subscriber to everything, as Home Assistant's MQTT integration is: (time, topic, payload, retained)."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.seen: list[tuple[float, str, bytes, bool]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda _c, _u, m: self.seen.append((time.monotonic(), m.topic, m.payload, m.retain))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("#", qos=1)
        self.client.loop_start()

    def wait(self, topic: str, payload: bytes | None = None, after: float = 0.0, seconds: float = 60.0) -> float:
        """When ``topic`` (with ``payload``, if given) was first seen after ``after``; fails after ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for when, t, p, _ in list(self.seen):
                if when >= after and t == topic and (payload is None or p == payload):
                    return when
            time.sleep(0.05)
        topics = sorted({t for _, t, _, _ in self.seen})
        raise AssertionError(f"{topic} {payload!r} not seen within {seconds} s: {topics}")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def publish_retained(port: int, messages: dict[str, bytes]) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, payload in messages.items():
        client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.disconnect()


def config(name: str, camera: str = "door") -> str:
    return f"homeassistant/binary_sensor/edgeface_{camera}/{name}/config"


@pytest.fixture(scope="module")
def lead_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The actor alone on stage in frames 90-210 of the clip."""
    path = tmp_path_factory.mktemp("lead") / "lead.jpg"
    cv2.imwrite(str(path), clip_frame(100))
    return path


def test_home_assistant_follows_the_gallery_while_serve_runs(broker: int, tmp_path: Path, lead_photo: Path) -> None:
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    # left behind by an earlier run: a person removed while edgeface was stopped, last seen present
    publish_retained(broker, {config("ghost"): b'{"name": "ghost at door"}', "edge/door/person/ghost": b"ON"})
    listener = Listener(broker)
    server = Served(tmp_path, "--gallery", str(gallery), "--source", str(CLIP), "--loop", "--camera", "door",
                    "--events", f"mqtt://127.0.0.1:{broker}/edge", "--ha-discovery")
    try:
        listener.wait(config("obama"))
        listener.wait("edge/door/availability", b"online")
        listener.wait(config("ghost"), b"")  # cleared on start: Home Assistant deletes the entity
        listener.wait("edge/door/person/ghost", b"")
        with httpx.Client(base_url=server.url, timeout=60) as client:
            # enrol through serve: the entity appears within 5 s, and the running camera names him
            asked = time.monotonic()
            enrolled = client.post("/api/people/Lead Actor/faces", content=lead_photo.read_bytes(),
                                   headers={"Content-Type": "image/jpeg"})
            assert enrolled.status_code == 200, enrolled.text
            done = time.monotonic()
            shown = listener.wait(config("lead_actor"), after=asked, seconds=30)
            assert shown - done <= FOLLOW_S, f"discovery {shown - done:.1f} s after the enrolment"
            listener.wait("edge/door/person/lead_actor", b"OFF", after=asked)
            listener.wait("edge/door/person/lead_actor", b"ON", after=asked, seconds=90)  # the camera names him
            sensor = json.loads(next(p for _, t, p, _ in listener.seen if t == config("lead_actor")))
            assert sensor["availability_topic"] == "edge/door/availability"

            # remove: an empty retained config deletes the entity, the state is forgotten, and nobody names him
            asked = time.monotonic()
            assert client.delete("/api/people/Lead Actor").status_code == 200
            assert listener.wait(config("lead_actor"), b"", after=asked) - asked <= FOLLOW_S + 1
            listener.wait("edge/door/person/lead_actor", b"", after=asked)
            after = client.post("/api/recognize", content=lead_photo.read_bytes(),
                                headers={"Content-Type": "image/jpeg"}).json()["faces"]
            assert [f["name"] for f in after] == [None], after
            removed = time.monotonic()
            listener.wait("edge/door/events", after=removed + 12, seconds=60)  # the clip loops past his scene
            named = [json.loads(p) for when, t, p, _ in listener.seen if t == "edge/door/events" and when > removed + 1]
            assert not any(e["name"] == "Lead Actor" and e["event"] == "arrived" for e in named), named

            # rename: a removal and an addition
            asked = time.monotonic()
            assert client.patch("/api/people/obama", json={"name": "barack"}).status_code == 200
            assert listener.wait(config("obama"), b"", after=asked) - asked <= FOLLOW_S + 1
            assert listener.wait(config("barack"), after=asked) - asked <= FOLLOW_S + 1
        now = retained(broker, "#")
        assert config("barack") in now and now["edge/door/person/barack"] == b"OFF"
        assert not any(k.endswith(("/ghost/config", "/ghost", "/lead_actor/config", "/obama/config")) for k in now)
    finally:
        code, err = server.stop()
        listener.close()
    assert code == 0 and "Traceback" not in err, err[-2000:]


def recognize(gallery: Path, camera: str, broker: int) -> tuple[subprocess.Popen, list[dict]]:
    """``edgeface recognize --json`` on the looped clip as ``camera``; its face rows, collected as they come."""
    process = subprocess.Popen([sys.executable, "-c", BLOCK_TF + CLI_LAUNCHER, "recognize", "--source", str(CLIP),
                                "--loop", "--gallery", str(gallery), "--camera", camera, "--json", "--max-seconds",
                                "240", "--events", f"mqtt://127.0.0.1:{broker}/home", "--ha-discovery"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rows: list[dict] = []

    def read() -> None:
        for line in process.stdout:
            row = json.loads(line)
            rows.append({**row, "seen": time.monotonic()})

    threading.Thread(target=read, daemon=True).start()
    return process, rows


def test_cli_enrolment_reaches_a_running_recognize_and_each_camera_keeps_its_availability(
        broker: int, tmp_path: Path, lead_photo: Path) -> None:
    gallery = tmp_path / "g.sqlite"
    assert run_cli("enroll", "obama", str(OBAMA), "--gallery", str(gallery)).returncode == 0
    listener = Listener(broker)
    front, front_rows = recognize(gallery, "front", broker)
    back, _ = recognize(gallery, "back", broker)
    try:
        for camera in ("front", "back"):
            listener.wait(f"home/{camera}/availability", b"online", seconds=90)
            listener.wait(config("obama", camera))
        asked = time.monotonic()
        assert run_cli("enroll", "lead", str(lead_photo), "--gallery", str(gallery)).returncode == 0
        done = time.monotonic()
        for camera in ("front", "back"):
            assert listener.wait(config("lead", camera), after=asked, seconds=30) - done <= FOLLOW_S
        # the running recogniser uses the new templates: it names him when he is next on stage
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(r.get("name") == "lead" for r in front_rows):
            time.sleep(0.2)
        assert any(r.get("name") == "lead" for r in front_rows), front_rows[-3:]

        # one camera stops: its own sensors go unavailable, the other camera's stay available
        stopped = time.monotonic()
        back.terminate()
        assert back.wait(timeout=60) == 0, back.stderr.read()[-2000:]
        listener.wait("home/back/availability", b"offline", after=stopped)
        time.sleep(1.0)
        assert not any(t == "home/front/availability" and p == b"offline" for _, t, p, _ in listener.seen)
        assert retained(broker, "home/+/availability") == {"home/front/availability": b"online",
                                                           "home/back/availability": b"offline"}
    finally:
        for process in (front, back):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        listener.close()


def test_gallery_upgrade_while_serve_runs_moves_the_running_model(tmp_path: Path, lead_photo: Path) -> None:
    """``gallery upgrade`` in another process while serve runs: requests and the camera carry on with the model the
    gallery moved to (no restart, no stranger matched across two models' embeddings)."""
    gallery = tmp_path / "g.sqlite"
    for name, photo in (("obama", OBAMA), ("lead", lead_photo)):
        assert run_cli("enroll", name, str(photo), "--gallery", str(gallery)).returncode == 0
    server = Served(tmp_path, "--gallery", str(gallery), "--source", str(CLIP), "--loop", "--camera", "stage")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            before = client.get("/api/health").json()["model"]
            upgraded = run_cli("gallery", "upgrade", "--model", "small", "--gallery", str(gallery))
            assert upgraded.returncode == 0, upgraded.stderr
            listed = client.get("/api/events", params={"limit": 1}).json()["events"]
            last = listed[0]["id"] if listed else 0
            probe = (MEDIA / "probes" / "obama3.jpg").read_bytes()
            faces = client.post("/api/recognize", content=probe, headers={"Content-Type": "image/jpeg"}).json()
            assert [f["name"] for f in faces["faces"]] == ["obama"], faces
            health = client.get("/api/health").json()
            assert health["model"] != before and "small" in health["model"], health
            deadline, events = time.monotonic() + 120, []
            while time.monotonic() < deadline:
                events = client.get("/api/events", params={"limit": 200}).json()["events"]
                if any(e["id"] > last and e["name"] == "lead" and e["event"] == "arrived" for e in events):
                    break
                time.sleep(0.5)
            else:
                raise AssertionError(f"the camera never named lead after the upgrade: {events[:5]}")
            assert client.get("/api/health").json()["camera"]["state"] == "running"
    finally:
        code, err = server.stop()
    assert code == 0 and "Traceback" not in err, err[-2000:]
