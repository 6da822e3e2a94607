"""Events over MQTT the way Home Assistant and Frigate users wire them, with no YAML.

``mqtt(s)://[user@]host[:port]/BASE`` publishes:

* ``BASE`` and ``BASE/<camera>/events``: every arrived/left event as JSON (QoS 1, not retained);
* ``BASE/<camera>/person/<person>``: ``ON`` while the person is present, ``OFF`` when not (retained, so a
  subscriber that comes later sees who is there; every enrolled person starts ``OFF``, so a ``kill -9`` that left
  someone ``ON`` is put right at the next start);
* ``BASE/<camera>/person/<person>/snapshot`` (``--snapshots``): the face of their latest arrival, JPEG, retained
  (``BASE/<camera>/unknown/snapshot``, a stranger's face, is not retained);
* ``BASE/<camera>/availability``: ``online`` while this camera's edgeface runs, ``offline`` when it stops or its
  connection dies (the broker publishes each process's own last will), retained: two cameras on one base never
  mark each other's sensors unavailable;
* with ``--ha-discovery``: ``homeassistant/binary_sensor/edgeface_<camera>/<person>/config`` (a presence sensor per
  enrolled person, one device per camera) and, with snapshots, ``homeassistant/image/.../config``: the entities
  appear in Home Assistant by themselves.

The sink follows the gallery while it runs (``roster``): a person enrolled through ``serve`` or the CLI gets their
discovery config and an ``OFF`` state, a removed one an empty retained message on each of their topics (Home
Assistant deletes the entities; the broker forgets the state), a rename is a removal and an addition. On every
connection the sink also reads back what is retained under its own topics and clears what belongs to nobody enrolled
now (a person removed while edgeface was stopped).

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
from typing import Any

from edgeface.errors import EdgefaceError
from edgeface.files import read_private_text
from edgeface.recognize.gallery import slug
from edgeface.recognize.sinks import QUEUE_SIZE, EventOptions, QueuedSink, checked_url, redact
from edgeface.version import __version__

DISCOVERY_PREFIX = "homeassistant"
ON, OFF, ONLINE, OFFLINE = "ON", "OFF", "online", "offline"
ENTITY_KINDS = ("binary_sensor", "image")  # the Home Assistant entities of a person


@dataclass(frozen=True)
class Topics:
    base: str
    camera: str

    @property
    def node(self) -> str:
        """The camera's Home Assistant device id (and discovery node)."""
        return f"edgeface_{slug(self.camera)}"

    @property
    def availability(self) -> str:
        return f"{self.base}/{slug(self.camera)}/availability"

    @property
    def camera_events(self) -> str:
        return f"{self.base}/{slug(self.camera)}/events"

    def person(self, name: str) -> str:
        return f"{self.base}/{slug(self.camera)}/person/{slug(name)}"

    def snapshot(self, name: str | None) -> str:
        """Where the face of an arrival goes: the person's, or one topic for any stranger (``name`` None)."""
        return f"{self.base}/{slug(self.camera)}/unknown/snapshot" if name is None else \
            f"{self.person(name)}/snapshot"

    def discovery(self, name: str, kind: str) -> str:
        """Where Home Assistant reads a person's entity config (``kind``: ``binary_sensor`` or ``image``)."""
        return f"{DISCOVERY_PREFIX}/{kind}/{self.node}/{slug(name)}/config"

    def owned(self) -> list[str]:
        """Subscriptions that read back every retained message this camera publishes per person."""
        return [f"{DISCOVERY_PREFIX}/{kind}/{self.node}/+/config" for kind in ENTITY_KINDS] + \
            [f"{self.base}/{slug(self.camera)}/person/+", f"{self.base}/{slug(self.camera)}/person/+/snapshot"]

    def person_of(self, topic: str) -> str | None:
        """The person slug a retained topic of this camera's belongs to (None: not a per-person topic)."""
        parts = topic.split("/")
        if topic.startswith(f"{DISCOVERY_PREFIX}/") and len(parts) == 5 and parts[2] == self.node:
            return parts[3]
        prefix = f"{self.base}/{slug(self.camera)}/person/"
        return topic[len(prefix):].split("/")[0] if topic.startswith(prefix) else None

    def person_topics(self, name: str) -> list[str]:
        """Every retained topic a person has: what is emptied when they leave the gallery."""
        return [self.discovery(name, kind) for kind in ENTITY_KINDS] + [self.person(name), self.snapshot(name)]


def discovery(topics: Topics, people: list[str], model: str, snapshots: bool) -> list[tuple[str, dict]]:
    """Home Assistant MQTT discovery: a ``presence`` binary sensor per enrolled person (and an image entity for
    their snapshot), grouped under one device per camera, all tied to the camera's availability topic."""
    node = topics.node
    device = {"identifiers": [node], "name": f"edgeface {topics.camera}", "manufacturer": "edgeface",
              "model": model or "edgeface", "sw_version": __version__}
    available = {"availability_topic": topics.availability, "payload_available": ONLINE,
                 "payload_not_available": OFFLINE}
    messages = []
    for name in people:
        person = slug(name)
        messages.append((topics.discovery(name, "binary_sensor"), {
            "name": f"{name} at {topics.camera}", "unique_id": f"{node}_{person}", "state_topic": topics.person(name),
            "payload_on": ON, "payload_off": OFF, "device_class": "presence", "qos": 1, "device": device,
            **available}))
        if snapshots:
            messages.append((topics.discovery(name, "image"), {
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


class Presence:
    """The MQTT side of one camera: the client's callbacks, who is enrolled (``roster``) and each person's state.

    paho calls ``on_connect`` and ``on_message`` on its network thread, the frame loop calls ``roster`` and the
    sink's thread ``publish``: one lock guards the states."""

    def __init__(self, client: Any, topics: Topics, people: list[str], model: str, options: EventOptions) -> None:
        self.client, self.topics, self.model, self.options = client, topics, model, options
        self.states = dict.fromkeys(people, OFF)
        self.lock = threading.Lock()

    def _entities(self, people: list[str]) -> None:
        """Discovery configs and current states of ``people`` (under the lock)."""
        if self.options.discovery:
            for topic, payload in discovery(self.topics, people, self.model, self.options.snapshots):
                self.client.publish(topic, json.dumps(payload), qos=1, retain=True)
        for name in people:
            self.client.publish(self.topics.person(name), self.states[name], qos=1, retain=True)

    def on_connect(self, client: Any, _userdata: object, _flags: object, reason: object, _props: object) -> None:
        """A new connection: online, every entity and state again, and read back what is retained (``on_message``)."""
        if getattr(reason, "is_failure", False):
            return
        client.publish(self.topics.availability, ONLINE, qos=1, retain=True)
        with self.lock:
            self._entities(list(self.states))
        for topic in self.topics.owned():
            client.subscribe(topic, qos=1)

    def on_message(self, client: Any, _userdata: object, message: Any) -> None:
        """A retained message under this camera's per-person topics for nobody enrolled now is emptied: a person
        removed while edgeface was stopped leaves no entity and no ``ON`` behind."""
        if not message.retain or not message.payload:
            return
        person = self.topics.person_of(message.topic)
        with self.lock:
            enrolled = {slug(name) for name in self.states}
        if person is not None and person not in enrolled:
            client.publish(message.topic, b"", qos=1, retain=True)

    def roster(self, people: list[str]) -> None:
        """The gallery's people now: new ones get their entities and ``OFF``, removed ones lose every retained
        topic (an empty retained message is how MQTT deletes one, and how Home Assistant deletes an entity)."""
        with self.lock:
            wanted = set(people)
            added = [name for name in people if name not in self.states]
            gone = [name for name in self.states if name not in wanted]
            for name in gone:
                del self.states[name]
                for topic in self.topics.person_topics(name):
                    self.client.publish(topic, b"", qos=1, retain=True)
            for name in added:
                self.states[name] = OFF
            self._entities(added)

    def publish(self, event: dict, mqtt: Any) -> None:
        """One event: on the base and camera topics, and the person's state and snapshot while they are enrolled."""
        if not self.client.is_connected():
            raise ConnectionError("not connected to the broker")
        snapshot = event.pop("_snapshot", None)
        payload = json.dumps(event)
        infos = [self.client.publish(self.topics.base, payload, qos=1),
                 self.client.publish(self.topics.camera_events, payload, qos=1)]
        name = event["name"]
        with self.lock:
            enrolled = name is not None and name in self.states
            if enrolled:
                self.states[name] = ON if event["event"] == "arrived" else OFF
                infos.append(self.client.publish(self.topics.person(name), self.states[name], qos=1, retain=True))
        if snapshot and (name is None or enrolled):  # a stranger's face is never left on the broker
            infos.append(self.client.publish(self.topics.snapshot(name), snapshot, qos=1, retain=name is not None))
        for info in infos:
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise ConnectionError(mqtt.error_string(info.rc))
            info.wait_for_publish(timeout=2.0)
            if not info.is_published():
                raise TimeoutError("the broker did not acknowledge within 2 s")


def mqtt_sink(url: str, options: EventOptions, camera: str, people: list[str], model: str) -> QueuedSink:
    """Events, presence states, snapshots and availability over MQTT, through one queued sink (``QueuedSink``:
    bounded, retried, never blocking the frame loop); paho reconnects by itself and republishes what a new
    connection needs (availability, discovery, every person's state). ``sink.roster(people)`` follows the
    gallery."""
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
    presence = Presence(client, topics, people, model, options)
    client.on_connect = presence.on_connect
    client.on_message = presence.on_message
    client.connect_async(parts.hostname, parts.port or (8883 if tls else 1883), keepalive=30)
    client.loop_start()

    sink = QueuedSink(redact(url), lambda event: presence.publish(dict(event), mqtt))
    sink.snapshots = options.snapshots  # type: ignore[attr-defined]
    sink.roster = presence.roster  # type: ignore[attr-defined]
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
