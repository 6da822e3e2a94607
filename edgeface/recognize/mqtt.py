"""Events over MQTT the way Home Assistant and Frigate users wire them, with no YAML.

``mqtt(s)://[user@]host[:port]/BASE`` publishes:

* ``BASE`` and ``BASE/<camera>/events``: every arrived/left event as JSON (QoS 1, not retained);
* ``BASE/<camera>/person/<person>``: ``ON`` while the person is present, ``OFF`` when not (retained, so a
  subscriber that comes later sees who is there; every enrolled person starts ``OFF``);
* ``BASE/<camera>/person/<person>/snapshot`` (``--snapshots``): the face of their latest arrival, JPEG, retained
  (``BASE/<camera>/unknown/snapshot``, a stranger's face, is not retained);
* ``BASE/availability``: ``online`` while edgeface runs, ``offline`` when it stops or its connection dies (the
  broker publishes the last will), retained;
* with ``--ha-discovery``: ``homeassistant/binary_sensor/edgeface_<camera>/<person>/config`` (a presence sensor per
  enrolled person, one device per camera) and, with snapshots, ``homeassistant/image/.../config``: the entities
  appear in Home Assistant by themselves.

Names in topics are slugs (lowercase letters, digits and ``_``); payloads keep the real names. The password never
comes from the command line (it would sit in ``ps`` and the shell history): ``EDGEFACE_MQTT_PASSWORD`` or
``--mqtt-password-file``. ``mqtts://`` checks the broker's certificate against ``--mqtt-ca`` (or the system's CAs).
"""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from edgeface.errors import EdgefaceError
from edgeface.files import read_private_text
from edgeface.recognize.gallery import slug
from edgeface.recognize.sinks import QUEUE_SIZE, EventOptions, QueuedSink, checked_url, redact
from edgeface.version import __version__

DISCOVERY_PREFIX = "homeassistant"
ON, OFF, ONLINE, OFFLINE = "ON", "OFF", "online", "offline"


@dataclass(frozen=True)
class Topics:
    base: str
    camera: str

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    @property
    def camera_events(self) -> str:
        return f"{self.base}/{slug(self.camera)}/events"

    def person(self, name: str) -> str:
        return f"{self.base}/{slug(self.camera)}/person/{slug(name)}"

    def snapshot(self, name: str | None) -> str:
        """Where the face of an arrival goes: the person's, or one topic for any stranger (``name`` None)."""
        return f"{self.base}/{slug(self.camera)}/unknown/snapshot" if name is None else \
            f"{self.person(name)}/snapshot"


def discovery(topics: Topics, people: list[str], model: str, snapshots: bool) -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery: a ``presence`` binary sensor per enrolled person (and an image entity for
    their snapshot), grouped under one device per camera, all tied to the availability topic."""
    node = f"edgeface_{slug(topics.camera)}"
    device = {"identifiers": [node], "name": f"edgeface {topics.camera}", "manufacturer": "edgeface",
              "model": model or "edgeface", "sw_version": __version__}
    available = {"availability_topic": topics.availability, "payload_available": ONLINE,
                 "payload_not_available": OFFLINE}
    messages = []
    for name in people:
        person = slug(name)
        messages.append((f"{DISCOVERY_PREFIX}/binary_sensor/{node}/{person}/config", {
            "name": f"{name} at {topics.camera}", "unique_id": f"{node}_{person}", "state_topic": topics.person(name),
            "payload_on": ON, "payload_off": OFF, "device_class": "presence", "qos": 1, "device": device,
            **available}))
        if snapshots:
            messages.append((f"{DISCOVERY_PREFIX}/image/{node}/{person}/config", {
                "name": f"{name} at {topics.camera} (last seen)", "unique_id": f"{node}_{person}_snapshot",
                "image_topic": topics.snapshot(name), "content_type": "image/jpeg", "device": device,
                **available}))
    return messages


def mqtt_password(parts: urllib.parse.SplitResult, options: EventOptions) -> str | None:
    if parts.password is not None:
        raise EdgefaceError("an MQTT password in the URL would show in 'ps' and the shell history: put it in "
                            "EDGEFACE_MQTT_PASSWORD or a file given as --mqtt-password-file")
    if options.mqtt_password_file is not None:
        return read_private_text(Path(options.mqtt_password_file), "--mqtt-password-file")
    return os.environ.get("EDGEFACE_MQTT_PASSWORD") or None  # an empty line in a settings file means none


def mqtt_sink(url: str, options: EventOptions, camera: str, people: list[str], model: str) -> QueuedSink:
    """Events, presence states, snapshots and availability over MQTT, through one queued sink (``QueuedSink``:
    bounded, retried, never blocking the frame loop); paho reconnects by itself and republishes what a new
    connection needs (availability, discovery, every person's state)."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise EdgefaceError("MQTT events need paho-mqtt: pip install 'edgeface[mqtt]'") from None
    parts = checked_url(url, ("mqtt", "mqtts"), "mqtt(s)://HOST[:PORT]/TOPIC (no + or #)")
    base = parts.path.strip("/")
    if not base or "+" in base:  # '#' is refused by checked_url
        raise EdgefaceError(f"MQTT events need mqtt(s)://HOST[:PORT]/TOPIC (no + or #), got {redact(url)!r}")
    tls = parts.scheme == "mqtts"
    if options.mqtt_ca is not None and not tls:
        raise EdgefaceError("--mqtt-ca is for mqtts:// brokers (TLS); this URL is mqtt://")
    if options.mqtt_ca is not None and not Path(options.mqtt_ca).is_file():
        raise EdgefaceError(f"--mqtt-ca not found: {options.mqtt_ca}")
    password = mqtt_password(parts, options)
    topics = Topics(base, camera)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgeface-{slug(camera)}-{os.getpid()}")
    if parts.username:
        client.username_pw_set(urllib.parse.unquote(parts.username), password)
    if tls:
        client.tls_set(ca_certs=str(options.mqtt_ca) if options.mqtt_ca else None)
    client.will_set(topics.availability, OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    client.max_queued_messages_set(QUEUE_SIZE)
    states = dict.fromkeys(people, OFF)
    lock = threading.Lock()

    def on_connect(client_: mqtt.Client, _userdata: object, _flags: object, reason: object, _props: object) -> None:
        if getattr(reason, "is_failure", False):
            return
        client_.publish(topics.availability, ONLINE, qos=1, retain=True)
        if options.discovery:
            for topic, payload in discovery(topics, people, model, options.snapshots):
                client_.publish(topic, json.dumps(payload), qos=1, retain=True)
        with lock:
            for name, state in states.items():
                client_.publish(topics.person(name), state, qos=1, retain=True)

    client.on_connect = on_connect
    client.connect_async(parts.hostname, parts.port or (8883 if tls else 1883), keepalive=30)
    client.loop_start()

    def publish(event: dict) -> None:
        if not client.is_connected():
            raise ConnectionError(f"not connected to {parts.hostname}:{parts.port or (8883 if tls else 1883)}")
        snapshot = event.pop("_snapshot", None)
        payload = json.dumps(event)
        infos = [client.publish(topics.base, payload, qos=1), client.publish(topics.camera_events, payload, qos=1)]
        if event["name"] is not None:
            state = ON if event["event"] == "arrived" else OFF
            with lock:
                states[event["name"]] = state
            infos.append(client.publish(topics.person(event["name"]), state, qos=1, retain=True))
        if snapshot:  # a stranger's face is never left on the broker; a person's last one is their image entity's
            infos.append(client.publish(topics.snapshot(event["name"]), snapshot, qos=1,
                                        retain=event["name"] is not None))
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(mqtt.error_string(info.rc))
            info.wait_for_publish(timeout=2.0)
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge within 2 s")

    sink = QueuedSink(redact(url), lambda event: publish(dict(event)))
    sink.snapshots = options.snapshots  # type: ignore[attr-defined]
    close = sink.close

    def close_and_disconnect(timeout: float = 3.0) -> dict:
        stats = close(timeout)
        if client.is_connected():  # a clean stop: say so now rather than leave it to the will
            client.publish(topics.availability, OFFLINE, qos=1, retain=True).wait_for_publish(timeout=2.0)
        client.loop_stop()
        client.disconnect()
        return stats

    sink.close = close_and_disconnect  # type: ignore[method-assign]
    return sink
