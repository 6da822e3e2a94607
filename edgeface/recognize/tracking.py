"""Face tracks across video frames: a face's identity is decided on the mean of its last few embeddings, and named
once that decision has held for a few frames in a row.

A single frame can match a stranger to an enrolled person by chance (at FAR 1e-3, about one comparison in a
thousand, and a camera makes thousands a minute); averaging a track's recent embeddings removes most such one-frame
spikes and steadies true matches. What averaging leaves, a stranger crossing the threshold for a frame or two (the
shipped model named one Hamilton actor "obama" in 2 of the clip's 275 frames), the confirmation removes: a name is
given once the track's smoothed match has named the same person in ``confirm`` consecutive frames (3 by default:
0.12 s at 25 FPS). Association is greedy by box overlap (IoU), which is enough at camera frame rates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgeface.vision.embed import l2_normalise
from edgeface.vision.face import SAME_FACE_IOU, iou


@dataclass
class Track:
    id: int
    box: np.ndarray
    embeddings: list[np.ndarray] = field(default_factory=list)
    last_seen: int = 0
    streak: tuple[str | None, int] = (None, 0)  # the person the track matched in its last frames, and how many
    rested: bool = False  # its face was not embedded on its last detected frame (``may_rest``)


class Tracker:
    def __init__(self, window: int = 5, max_age: int = 10, min_iou: float = SAME_FACE_IOU) -> None:
        self.window, self.max_age, self.min_iou = max(1, window), max_age, min_iou
        self.tracks: list[Track] = []
        self.ended: list[int] = []  # tracks ended since the reader last took them (``take_ended``)
        self.frame = 0
        self._next_id = 0

    def confirmed(self, track_id: int, name: str | None, confirm: int) -> bool:
        """Record that ``track_id`` matched ``name`` (None: nobody) this frame; has it given that same answer in
        ``confirm`` consecutive frames? (A stranger is confirmed as one the same way a name is.)"""
        track = next(t for t in self.tracks if t.id == track_id)
        person, count = track.streak
        track.streak = (name, count + 1 if name == person else 1)
        return track.streak[1] >= confirm

    def may_rest(self, track_id: int | None, confirm: int) -> bool:
        """May this track's face skip its embedding on this detected frame? Only when the track's match has held
        for ``confirm`` frames (a name given, or a stranger for as long) and it was embedded on its last detected
        frame: a settled face is embedded on every other one, so it is never unchecked for two in a row."""
        track = next((t for t in self.tracks if t.id == track_id), None)
        return track is not None and not track.rested and track.streak[1] >= confirm

    def move(self, track_id: int, box: np.ndarray) -> None:
        """A track's face was followed to ``box`` between key frames (no new embedding): the next detection
        matches it there."""
        for track in self.tracks:
            if track.id == track_id:
                track.box = np.asarray(box, np.float32)

    def age(self) -> None:
        """One more detected frame: tracks no detection has matched for ``max_age`` of them end. Called by
        ``update``, and on its own for a frame where no face could be embedded, so tracks age all the same."""
        self.frame += 1
        live = {t.id for t in self.tracks if self.frame - t.last_seen <= self.max_age}
        self.ended += [t.id for t in self.tracks if t.id not in live]
        self.tracks = [t for t in self.tracks if t.id in live]

    def is_live(self, track_id: int | None) -> bool:
        """Is ``track_id`` a track the tracker still holds (seen by a detection within ``max_age`` updates: ``age``
        lets go of the others)?"""
        return track_id is not None and any(t.id == track_id for t in self.tracks)

    def take_ended(self) -> list[int]:
        """The tracks that ended since the last call (aged out, or forgotten by ``reset``)."""
        ended, self.ended = self.ended, []
        return ended

    def reset(self) -> None:
        """Forget every track (a new, unrelated image); track ids keep counting up."""
        self.ended += [t.id for t in self.tracks]
        self.tracks = []

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | list[np.ndarray | None]
               ) -> tuple[list[int], list[np.ndarray | None]]:
        """Assign each detection to a track; return (track ids, smoothed unit embeddings). A detection whose
        embedding is None (its track rested, ``may_rest``) moves its track and keeps it alive; its smoothed
        embedding is None."""
        self.age()
        ids: list[int] = []
        smoothed: list[np.ndarray | None] = []
        free = list(range(len(self.tracks)))
        for box, emb in zip(boxes, embeddings, strict=True):
            track = None
            if free:
                overlaps = iou(box, np.stack([self.tracks[i].box for i in free]))
                best = int(np.argmax(overlaps))
                if overlaps[best] >= self.min_iou:
                    track = self.tracks[free.pop(best)]
            if track is None:
                track = Track(self._next_id, box)
                self._next_id += 1
                self.tracks.append(track)
            track.box, track.last_seen, track.rested = box, self.frame, emb is None
            ids.append(track.id)
            if emb is None:
                smoothed.append(None)
                continue
            track.embeddings = [*track.embeddings[-(self.window - 1):], emb] if self.window > 1 else [emb]
            smoothed.append(l2_normalise(np.mean(track.embeddings, axis=0)))
        return ids, smoothed
