"""Every setting of a recognition pipeline, its default and its check, in one place.

The CLI, the Python API and ``edgeface serve`` all describe the work they want as one ``PipelineConfig`` and hand it
to ``recognize.pipeline.Pipeline``: a default changed here changes it for every surface, and a bad value is refused
in one line, naming the option, before any model is loaded. Light on purpose (no numpy, no OpenCV): the CLI builds
one at parse time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from edgeface.errors import EdgefaceError
from edgeface.manifest import check_threshold
from edgeface.runtime.threads import check_threads
from edgeface.vision.detector_options import (
    DEFAULT_DETECT_EVERY,
    DEFAULT_DETECT_SIZE,
    DEFAULT_DETECTOR,
    DEFAULT_MIN_FACE,
    check_detect_size,
    check_min_face,
    detector_value,
)

DEFAULT_SMOOTH = 5  # frames: a track is decided on the mean embedding of its last N embedded frames
DEFAULT_CONFIRM = 3  # frames in a row a track must match the same person before it is named (video only)
DEFAULT_STREAM_FPS = 15.0  # serve's live view: at most this many frames a second per viewer


def check_frames(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise EdgefaceError(f"{name} must be a whole number of frames from 1 to 1000, got {value!r}")
    return value


def check_turn(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise EdgefaceError(f"--max-turn must be above 0 (0 is frontal, profiles about 2), got {value!r}")
    return float(value)


def check_tracking(smooth: int, max_turn: float | None, confirm: int = DEFAULT_CONFIRM,
                   detect_every: int = DEFAULT_DETECT_EVERY) -> None:
    """The tracking settings' ranges (before any model is loaded)."""
    for name, value in (("--smooth", smooth), ("--confirm", confirm), ("--detect-every", detect_every)):
        check_frames(name, value)
    if max_turn is not None:
        check_turn(max_turn)


@dataclass(frozen=True)
class PipelineConfig:
    """What to run and how: the model and its normalisation, the detector, the decision threshold and the video
    loop's settings. ``None`` means "the model's own" (its manifest's threshold, normalisation and head-turn limit;
    ``DEFAULT_MAX_TURN`` where the manifest has none)."""

    model: str | Path | None = None  # a .tflite, a shipped name (default, fast, small...), "dlib"; None: the default
    threshold: float | None = None
    detector: str = DEFAULT_DETECTOR
    detect_size: int = DEFAULT_DETECT_SIZE
    min_face: int = DEFAULT_MIN_FACE
    threads: int = 1
    input_mean: float | None = None
    input_scale: float | None = None
    channels: str | None = None
    smooth: int = DEFAULT_SMOOTH
    confirm: int = DEFAULT_CONFIRM
    max_turn: float | None = None
    detect_every: int = DEFAULT_DETECT_EVERY
    light_gates: bool = True  # the model's light limits (its manifest's ``gates``): too dark, uneven, blurred

    def __post_init__(self) -> None:
        """Checked once, when made: a config that exists is a valid one."""
        if self.model is not None and not isinstance(self.model, (str, Path)):
            raise EdgefaceError(f"model must be a path or a shipped model's name, got {type(self.model).__name__}")
        object.__setattr__(self, "detector", detector_value(self.detector))
        check_detect_size(self.detect_size)
        check_min_face(self.min_face)
        check_threads(self.threads)
        check_tracking(self.smooth, self.max_turn, self.confirm, self.detect_every)
        if self.threshold is not None:
            check_threshold(self.threshold, "threshold")
        for name in ("input_mean", "input_scale"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise EdgefaceError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.light_gates, bool):
            raise EdgefaceError(f"light_gates must be True or False, got {self.light_gates!r}")
        if self.channels is not None and self.channels not in ("RGB", "BGR"):
            raise EdgefaceError(f"channels must be RGB or BGR, got {self.channels!r}")

    @classmethod
    def of(cls, **options: Any) -> PipelineConfig:
        """A config from keyword options, refusing a name that is not a setting (a typo is not silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise EdgefaceError(f"unknown option {unknown[0]!r}; the options are {', '.join(sorted(known))}")
        return cls(**options)

    def but(self, **changes: Any) -> PipelineConfig:
        """The same config with some settings changed (checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
