"""MQTT as Home Assistant uses it, against a real mosquitto over TLS with a password: discovery payloads checked
field by field against Home Assistant's documented schema, presence per person (retained), a snapshot of each
arrival, availability with a last will."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import MEDIA, assert_one_line_error, clip_frame, needs_shared, run_cli, wait_for_port

pytestmark = needs_shared
CLIP = MEDIA / "short_hamilton_clip.mp4"
PASSWORD = "door-bell-2026"
# Home Assistant's MQTT binary sensor and image options (home-assistant.io/integrations/binary_sensor.mqtt/ and
# image.mqtt/) that edgeface may send; anything else would be ignored or refused by Home Assistant
BINARY_SENSOR_KEYS = {"availability_topic", "payload_available", "payload_not_available", "device", "device_class",
                      "name", "unique_id", "state_topic", "payload_on", "payload_off", "qos", "value_template",
                      "json_attributes_topic", "icon", "entity_category", "expire_after", "force_update", "off_delay"}
IMAGE_KEYS = {"availability_topic", "payload_available", "payload_not_available", "device", "name", "unique_id",
              "image_topic", "content_type", "image_encoding", "url_topic", "icon", "entity_category"}
DEVICE_KEYS = {"identifiers", "connections", "name", "manufacturer", "model", "sw_version", "hw_version",
               "configuration_url", "suggested_area", "via_device"}
PRESENCE_CLASSES = {"presence", "occupancy", "motion"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    """mosquitto on a TLS listener (a CA and a server certificate made here) that wants a user and password."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(exe).exists():
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    tmp = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=edgeface test CA", cwd=tmp)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost", cwd=tmp)
    (tmp / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=tmp)
    subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", "-c",
                    str(tmp / "passwd"), "edgeface", PASSWORD], check=True, capture_output=True)
    port = free_port()
    (tmp / "mosquitto.conf").write_text(
        f"user root\nper_listener_settings false\nallow_anonymous false\npassword_file {tmp / 'passwd'}\n"
        f"listener {port} 127.0.0.1\ncafile {tmp / 'ca.pem'}\ncertfile {tmp / 'server.pem'}\n"
        f"keyfile {tmp / 'server.key'}\n")
    proc = subprocess.Popen([exe, "-c", str(tmp / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, "mosquitto")
    yield port, tmp / "ca.pem"
    proc.kill()
    proc.wait()


def listen(port: int, ca: Path) -> tuple[object, list[tuple[str, bytes, bool]]]:
    """A TLS subscriber to every topic, as Home Assistant's MQTT integration is."""
    import paho.mqtt.client as mqtt

    seen: list[tuple[str, bytes, bool]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.username_pw_set("edgeface", PASSWORD)
    client.tls_set(ca_certs=str(ca))
    client.on_message = lambda _c, _u, msg: seen.append((msg.topic, msg.payload, bool(msg.retain)))
    client.connect("127.0.0.1", port)
    client.subscribe("#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    return client, seen


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The actor alone on stage in frames 90-210 of the clip, enrolled from frame 100, and Obama."""
    tmp = tmp_path_factory.mktemp("ha")
    cv2.imwrite(str(tmp / "lead.jpg"), clip_frame(100))
    path = tmp / "g.sqlite"
    for name, photo in (("Lead Actor", tmp / "lead.jpg"), ("obama", MEDIA / "gallery" / "obama" / "obama.jpg")):
        done = run_cli("enroll", name, str(photo), "--gallery", str(path))
        assert done.returncode == 0, done.stderr
    return path


def test_home_assistant_sees_the_person_come_and_go_over_tls(broker, gallery: Path) -> None:
    port, ca = broker
    client, seen = listen(port, ca)
    done = run_cli("recognize", "--source", str(CLIP), "--gallery", str(gallery), "--camera", "Front door",
                   "--events", f"mqtts://edgeface@127.0.0.1:{port}/edgeface", "--mqtt-ca", str(ca),
                   "--ha-discovery", "--snapshots", "--no-unknown-events", "--json",
                   env={"EDGEFACE_MQTT_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert summary["events"][0]["failed"] == summary["events"][0]["dropped"] == 0
    time.sleep(1.0)
    client.loop_stop()
    topics = [t for t, _, _ in seen]

    # discovery: one presence sensor and one image per enrolled person, grouped under the camera's device
    configs = {t: json.loads(p) for t, p, retained in seen if t.startswith("homeassistant/")}
    assert configs, sorted({t for t, _, _ in seen})
    sensor = configs["homeassistant/binary_sensor/edgeface_front_door/lead_actor/config"]
    assert set(sensor) <= BINARY_SENSOR_KEYS and set(sensor["device"]) <= DEVICE_KEYS
    assert sensor["state_topic"] == "edgeface/front_door/person/lead_actor"
    assert (sensor["payload_on"], sensor["payload_off"]) == ("ON", "OFF")
    assert sensor["device_class"] in PRESENCE_CLASSES and sensor["name"] == "Lead Actor at Front door"
    assert sensor["availability_topic"] == "edgeface/front_door/availability"
    assert (sensor["payload_available"], sensor["payload_not_available"]) == ("online", "offline")
    assert sensor["device"]["identifiers"] == ["edgeface_front_door"] and sensor["device"]["model"]
    assert "homeassistant/binary_sensor/edgeface_front_door/obama/config" in configs
    ids = [c["unique_id"] for c in configs.values()]
    assert len(ids) == len(set(ids)) == 4  # two people x (sensor + image)
    image = configs["homeassistant/image/edgeface_front_door/lead_actor/config"]
    assert set(image) <= IMAGE_KEYS and image["content_type"] == "image/jpeg"
    assert image["image_topic"] == "edgeface/front_door/person/lead_actor/snapshot"

    # presence: OFF at start, then ON and OFF in turn, retained; nobody else comes (Obama is in profile,
    # strangers are not sent)
    lead = [p.decode() for t, p, _ in seen if t == sensor["state_topic"]]
    assert lead[0] == "OFF" and lead[1::2] == ["ON"] * (len(lead) // 2) and lead[2::2] == ["OFF"] * (len(lead) // 2)
    assert [p.decode() for t, p, _ in seen if t == "edgeface/front_door/person/obama"] == ["OFF"]
    events = [json.loads(p) for t, p, _ in seen if t == "edgeface/front_door/events"]
    assert {e["name"] for e in events} == {"Lead Actor"} and len(events) == len(lead) - 1
    # his scene (frames 90-210, about 3-7 s into the clip) is one arrival and one departure, however his match
    # wavers around the threshold inside it
    scene = [e for e in events if 2.5 < e["media_time"] < 8]
    assert [e["event"] for e in scene] == ["arrived", "left"], events
    assert scene[0]["camera"] == "Front door" and scene[1]["seconds"] > 3
    assert len([t for t in topics if t == "edgeface"]) == len(events)  # the stream of all cameras: the same

    # the snapshot is his face, a JPEG; availability went online, then offline when the run ended
    jpeg = [p for t, p, _ in seen if t == image["image_topic"]][-1]  # retained: the latest arrival's
    face = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert face is not None and 60 <= face.shape[0] <= 320
    assert [p.decode() for t, p, _ in seen if t == "edgeface/front_door/availability"] == ["online", "offline"]

    # a subscriber that comes later (Home Assistant restarting) gets the retained state of everything
    late, retained = listen(port, ca)
    time.sleep(0.5)
    late.loop_stop()
    now = {t: p for t, p, r in retained if r}
    assert now["edgeface/front_door/availability"] == b"offline" and now[sensor["state_topic"]] == b"OFF"
    assert now[image["image_topic"]] == jpeg and "homeassistant/binary_sensor/edgeface_front_door/obama/config" in now


def test_mqtt_credentials_never_come_from_the_command_line(broker, gallery: Path, tmp_path: Path) -> None:
    port, ca = broker
    probe = str(MEDIA / "probes" / "obama3.jpg")
    assert_one_line_error(run_cli("recognize", "--source", probe, "--gallery", str(gallery), "--events",
                                  f"mqtts://edgeface:{PASSWORD}@127.0.0.1:{port}/edgeface"), "EDGEFACE_MQTT_PASSWORD")
    assert_one_line_error(run_cli("recognize", "--source", probe, "--gallery", str(gallery), "--events",
                                  f"mqtt://127.0.0.1:{port}/edgeface", "--mqtt-ca", str(ca)), "mqtts://")
    secret = tmp_path / "mqtt-password"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o644)  # a password file others can read is refused, as a token file is
    assert_one_line_error(run_cli("recognize", "--source", probe, "--gallery", str(gallery), "--events",
                                  f"mqtts://edgeface@127.0.0.1:{port}/edgeface", "--mqtt-ca", str(ca),
                                  "--mqtt-password-file", str(secret)), "readable by others", "chmod 600")
    secret.chmod(0o600)
    client, seen = listen(port, ca)
    done = run_cli("recognize", "--source", probe, "--gallery", str(gallery), "--camera", "desk", "--events",
                   f"mqtts://edgeface@127.0.0.1:{port}/edgeface", "--mqtt-ca", str(ca), "--mqtt-password-file",
                   str(secret), "--json")
    time.sleep(0.5)
    client.loop_stop()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["summary"]["events"][0]["sent"] == 2
    assert [p.decode() for t, p, _ in seen if t == "edgeface/desk/person/obama"] == ["OFF", "ON", "OFF"]
