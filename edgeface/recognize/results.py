"""One record for a face, filled stage by stage (detection -> head turn -> embedding -> match) and used by every
surface: the frame loop, the Python API (``detect``, ``identify``, ``watch``), ``--json`` output, the events and
``edgeface serve``: one shape, one vocabulary, instead of a dict each of them spelled its own way.

* ``detection`` is the detector's score; ``score`` is always the cosine similarity to ``candidate``.
* A face that is nobody enrolled has ``name`` None, never a string; with an empty gallery ``candidate`` is None too.
* ``reason`` says why a face was not compared (too small, turned away).
* Values are kept as measured and rounded only where they are written out (``to_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeface.vision.face import Face

DECIMALS = {"box": 1, "landmarks": 1, "detection": 3, "turn": 2, "score": 4}  # as written out


def rounded(value: float | None, field: str) -> float | None:
    """A value as every output writes it (``DECIMALS``)."""
    return None if value is None else round(float(value), DECIMALS[field])


def rounded_box(box: object) -> list[float | None]:
    return [rounded(v, "box") for v in box]  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FaceRecord:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
    landmarks: tuple[tuple[float, float], ...]  # the detector's points (YuNet: eyes, nose tip, mouth corners)
    detection: float  # the detector's score
    turn: float | None = None  # head turn (0 frontal, ~2 in profile: ``vision.quality.head_turn``); None: not measured
    name: str | None = None  # the enrolled person, once named (in video: confirmed over frames); None: nobody
    score: float | None = None  # cosine similarity to ``candidate``; None when the face was not compared
    candidate: str | None = None  # the closest enrolled person, named or not
    track: int | None = None  # the face track across frames (video)
    reason: str | None = None  # why the face was not compared
    # has the match held long enough to act on? In video: the same answer (a name, or nobody) for ``confirm``
    # frames of its track; a photo at once. Events announce a stranger only once settled, as a name is.
    settled: bool = True

    @classmethod
    def detected(cls, face: Face, turn: float | None = None, reason: str | None = None) -> FaceRecord:
        """A detection before matching: what is known of every face, compared or not."""
        return cls(box=tuple(float(v) for v in face.box),
                   landmarks=tuple((float(x), float(y)) for x, y in face.keypoints),
                   detection=float(face.score), turn=None if turn is None else float(turn), reason=reason)

    @property
    def label(self) -> str:
        """What a person watching reads: the name, else why the face was skipped, else "unknown"."""
        return self.name or self.reason or "unknown"

    @property
    def top_right_bottom_left(self) -> tuple[int, int, int, int]:
        """face_recognition's ``(top, right, bottom, left)`` order, rounded to pixels."""
        x0, y0, x1, y1 = self.box
        return round(y0), round(x1), round(y1), round(x0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready and rounded (``DECIMALS``): every field (lists for tuples), ``reason`` only when there is
        one."""
        out: dict[str, Any] = {"name": self.name, "score": rounded(self.score, "score"), "candidate": self.candidate,
                               "track": self.track, "box": rounded_box(self.box),
                               "detection": rounded(self.detection, "detection"), "turn": rounded(self.turn, "turn"),
                               "landmarks": [[rounded(x, "landmarks"), rounded(y, "landmarks")]
                                             for x, y in self.landmarks]}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


RecognisedFace = FaceRecord  # the name it had before detection records shared it
