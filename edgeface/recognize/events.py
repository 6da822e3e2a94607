"""Where recognition events go besides stdout: MQTT (``edgeface.recognize.mqtt``), HTTP webhooks, a JSON-lines file.

A camera at 25 FPS sees a person standing at the door 25 times a second. Sinks get what a home-automation rule
wants instead: one ``arrived`` event when a person appears (or an unknown face, if wanted) and one ``left`` event
when they are gone, with how long they were seen (``Debouncer``).

Delivery never holds up the frame loop (``edgeface.recognize.sinks``): each network sink has a bounded queue drained
by its own thread. The summary reports sent, dropped and failed counts per sink.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.results import RecognisedFace, rounded, rounded_box
from edgeface.recognize.sinks import EventOptions, FileSink, QueuedSink, http_sink
from edgeface.vision.image import square_jpeg


class Debouncer:
    """Turns per-frame face results into ``arrived`` / ``left`` events.

    A named person is present while any face track carries their name: one ``arrived`` when the first does, one
    ``left`` (with how long they were seen) when the last ends or turns into someone else, so a track that splits
    in two never announces the same person twice. An unknown face is announced per track, only with ``unknown``,
    and only once its track has been nobody for as many frames as a name needs (``FaceRecord.settled``): a face
    seen for a blink is no stranger arriving and leaving. A track that gets a name, or changes it, leaves its old
    name before it arrives as the new one; a named track whose match dips below the threshold for a few frames keeps
    its name (the same face on the same track: a presence sensor should not flicker).

    When a track ends is the tracker's decision (``Recognizer.ended``: no detection matched it for the tracker's
    ``max_age`` detected frames), passed in as ``ended``: the debouncer keeps no clock of its own, so a face
    followed between key frames is not taken for gone.
    """

    def __init__(self, unknown: bool = True) -> None:
        self.unknown = unknown
        self.names: dict[int, str | None] = {}  # live track -> the name it carries (None: a stranger)
        self.present: dict[str, dict[str, Any]] = {}  # person (or an unknown track's key) -> presence

    @staticmethod
    def key(name: str | None, track: int) -> str:
        return f"unknown#{track}" if name is None else name

    def update(self, results: list[RecognisedFace], source: str, frame: int, media_time: float | None = None,
               ended: Iterable[int] = ()) -> list[dict]:
        now = round(time.time(), 3)
        stamp = {"time": now, "source": source, "frame": frame,
                 **({"media_time": round(media_time, 3)} if media_time is not None else {})}
        clock = now if media_time is None else media_time  # a file's time, not how fast it was processed
        out = []
        for track_id in ended:
            if track_id in self.names:
                out += self._drop(track_id, stamp)
        for r in results:
            track_id = r.track
            if track_id is None:
                continue  # not embedded (turned away, too small): nobody to announce
            known = track_id in self.names
            name = r.name
            if known and self.names[track_id] is not None and name is None:
                name = self.names[track_id]  # a named face whose match dips for a frame is still that person
            if known and self.names[track_id] != name:
                out += self._drop(track_id, stamp)
                known = False
            if not known and name is None and not r.settled:
                continue  # a stranger is announced once their track is confirmed as one, as a name is
            key = self.key(name, track_id)
            # an event is a view of the face record, rounded as every output rounds it
            box, score = rounded_box(r.box), rounded(r.score, "score")
            if not known:
                self.names[track_id] = name
                presence = self.present.get(key)
                if presence is None:
                    presence = self.present[key] = {"first": clock, "tracks": set()}
                    if name is not None or self.unknown:
                        out.append({"event": "arrived", **stamp, "track": track_id, "name": name,
                                    "score": score, "box": box})
                presence["tracks"].add(track_id)
            self.present[key].update(last=clock, score=score, box=box, track=track_id, source=source, frame=frame)
        return out

    def _drop(self, track_id: int, stamp: dict) -> list[dict]:
        """The track ends (or changes name); its person leaves when it was their last track."""
        name = self.names.pop(track_id)
        key = self.key(name, track_id)
        presence = self.present[key]
        presence["tracks"].discard(track_id)
        if presence["tracks"]:
            return []
        del self.present[key]
        if name is None and not self.unknown:
            return []
        return [{"event": "left", **stamp, "source": presence["source"], "frame": presence["frame"],
                 "track": presence["track"], "name": name, "score": presence["score"],
                 "box": presence["box"], "seconds": round(presence["last"] - presence["first"], 3)}]

    def flush(self, media_time: float | None = None) -> list[dict]:
        """Every open track leaves (the source ended, the loop stopped, or the next photo is unrelated)."""
        stamp = {"time": round(time.time(), 3),
                 **({"media_time": round(media_time, 3)} if media_time is not None else {})}
        out = []
        for track_id in list(self.names):
            out += self._drop(track_id, stamp)
        return out


def open_sink(spec: str, options: EventOptions | None = None, camera: str = "camera",
              people: list[str] | None = None, model: str = "") -> QueuedSink | FileSink:
    """``mqtt(s)://...``, ``http(s)://...`` or a ``.jsonl`` path."""
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else ""
    if scheme in ("mqtt", "mqtts"):
        from edgeface.recognize.mqtt import mqtt_sink

        return mqtt_sink(spec, options or EventOptions(), camera, people or [], model)
    if scheme in ("http", "https"):
        return http_sink(spec)
    if scheme:
        raise EdgefaceError(f"--events takes mqtt(s)://, http(s):// or a file path, not {scheme}://")
    return FileSink(Path(spec))


def face_jpeg(image_bgr: np.ndarray, box: list[float]) -> bytes | None:
    """The face in a square 1.5 times its size, at most 320 px a side, as JPEG: a snapshot of an arrival."""
    x0, y0, x1, y1 = box
    snapshot = square_jpeg(image_bgr, (x0 + x1) / 2, (y0 + y1) / 2, 1.5 * max(x1 - x0, y1 - y0), 320, 85)
    return snapshot[0] if snapshot else None


class Events:
    """The debouncer and every sink of one run; each event names the ``camera``."""

    def __init__(self, specs: list[str], extra: list | None = None, camera: str | None = None,
                 options: EventOptions | None = None, people: list[str] | None = None, model: str = "") -> None:
        self.options = options or EventOptions()
        self.camera = camera
        self.sinks = [open_sink(s, self.options, camera or "camera", people, model) for s in specs] + list(extra or [])
        self.snapshot_sinks = {id(sink) for sink in self.sinks if getattr(sink, "snapshots", False)}
        self.debouncer = Debouncer(unknown=self.options.unknown)
        self.people = people

    def roster(self, people: list[str]) -> None:
        """The gallery's people as the loop reads them on each frame (the same list object until the gallery
        changes, so an unchanged gallery costs one comparison): sinks that keep per-person state (MQTT, Home
        Assistant) follow enrolments, removals and renames while the run goes on."""
        if people is self.people:
            return
        self.people = people
        for sink in self.sinks:
            follow = getattr(sink, "roster", None)
            if follow is not None:
                follow(list(people))

    def frame(self, results: list[RecognisedFace], source: str, frame: int, new_photo: bool = False,
              image: np.ndarray | None = None, media_time: float | None = None, ended: Iterable[int] = ()) -> None:
        """One frame's results (``image``: the BGR frame, for snapshots; ``media_time``: its position in a file;
        ``ended``: the tracks the tracker ended on this frame)."""
        events = self.debouncer.flush(media_time) if new_photo else []  # a new, unrelated photo: the last one's
        self._send(events + self.debouncer.update(results, source, frame, media_time, ended), image)

    def _send(self, events: list[dict], image: np.ndarray | None = None) -> None:
        for event in events:
            if self.camera is not None:
                event = {"camera": self.camera, **event}
            snapshot = face_jpeg(image, event["box"]) if self.snapshot_sinks and image is not None and \
                event["event"] == "arrived" else None
            for sink in self.sinks:
                sink.send({**event, "_snapshot": snapshot} if snapshot and id(sink) in self.snapshot_sinks else event)

    def close(self) -> list[dict]:
        self._send(self.debouncer.flush())
        return [sink.close() for sink in self.sinks]


__all__ = ["Debouncer", "Events", "face_jpeg", "open_sink"]
