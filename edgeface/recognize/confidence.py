"""edgeface's similarity as the ``confidence`` (DeepStack, CodeProject.AI) or ``similarity`` (CompreFace) that NVR
clients compare with their own thresholds.

Those clients decide a match by a percentage: Double Take calls a face a match from 60 and shows a name from 40 by
default; Home Assistant's DeepStack integration and Blue Iris take a minimum confidence the user types. edgeface's
score is a cosine whose meaning depends on the model (the default model's threshold is near 0.93, another's near
0.4), so it is mapped once, per model, onto one scale: the model's threshold is ``MATCH_CONFIDENCE`` (0.60), and the
scale climbs linearly to 1.0 at a cosine of 1 and falls as steeply below the threshold to 0. A client left at its
default (60) therefore accepts exactly what edgeface names, and a user who raises it to 80 asks for a margin above the
threshold. edgeface never names a face below its own threshold, whatever ``min_confidence`` a client sends; a higher
one only makes it stricter.
"""

from __future__ import annotations

MATCH_CONFIDENCE = 0.60  # the model's threshold on the clients' scale (Double Take's default match confidence)


def confidence(score: float | None, threshold: float) -> float:
    """A cosine ``score`` on the clients' 0-1 scale (0 for a face that was not compared)."""
    if score is None:
        return 0.0
    slope = (1.0 - MATCH_CONFIDENCE) / max(1.0 - threshold, 1e-6)
    return round(min(1.0, max(0.0, MATCH_CONFIDENCE + slope * (float(score) - threshold))), 4)

