"""One record for a recognised face, used by the frame loop, the Python API, ``--json`` output, the events and
``edgeface serve``: one shape instead of a dict each of them spelled its own way.

A face that is nobody enrolled has ``name`` None, never a string: a person enrolled under any name stays
distinguishable from a stranger. ``reason`` says why a face was not embedded at all (too small, turned away).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeface.vision.face import Face


@dataclass(frozen=True)
class RecognisedFace:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    landmarks: tuple[tuple[float, float], ...]  # the detector's points (YuNet: eyes, nose tip, mouth corners)
    detection: float  # the detector's score
    turn: float  # head turn (0 frontal, about 2 in profile: ``vision.quality.head_turn``)
    name: str | None = None  # the enrolled person, once named (in video: confirmed over frames); None: nobody
    score: float | None = None  # cosine similarity to ``candidate``; None when the face was not embedded
    candidate: str | None = None  # the closest enrolled person, named or not
    track: int | None = None  # the face track across frames (video)
    reason: str | None = None  # why the face was not embedded

    @classmethod
    def detected(cls, face: Face, turn: float, reason: str | None = None) -> RecognisedFace:
        """A detection before matching: what is known of every face, embedded or not."""
        return cls(box=tuple(round(float(v), 1) for v in face.box),
                   landmarks=tuple((round(float(x), 1), round(float(y), 1)) for x, y in face.keypoints),
                   detection=round(float(face.score), 3), turn=round(float(turn), 2), reason=reason)

    @property
    def label(self) -> str:
        """What a person watching reads: the name, else why the face was skipped, else "unknown"."""
        return self.name or self.reason or "unknown"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field (lists for tuples), ``reason`` only when there is one."""
        out: dict[str, Any] = {"name": self.name, "score": self.score, "candidate": self.candidate,
                               "track": self.track, "box": list(self.box), "detection": self.detection,
                               "turn": self.turn, "landmarks": [list(p) for p in self.landmarks]}
        if self.reason is not None:
            out["reason"] = self.reason
        return out
