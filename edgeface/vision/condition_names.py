"""Names of the evaluation conditions: light enough for the CLI to import at start-up (no numpy, no cv2)."""

from __future__ import annotations

from enum import Enum

# name -> what it does, as printed by --help and stored in reports
CONDITIONS = {
    "plain": "the image as it is",
    "grey": "greyscale, as from an IR or night camera",
    "relight": "strong one-sided light: one side of the face at 20 %, the other at 130 %",
    "lowres32": "face downscaled to 32 px between the eyes, then back up",
    "jpeg20": "JPEG quality 20",
    "shadow": "hard directional light: a cast shadow edge across the face, one side at 8 %, the other at 140 % "
              "(clipped), JPEG 70",
    "dark": "low exposure: a tenth of the light, the camera's gain at its limit (40 % of the level), sensor noise, "
            "JPEG 60",
    "nir": "near-infrared night camera: grey, skin brightened and flattened, soft, sensor noise, JPEG 60",
}
# the conditions a stored threshold is held under (``eval --save-threshold --hold-conditions``); the harsh ones
# after them are what the quality gates (``vision.quality``) keep from being named instead
HELD_CONDITIONS = ("grey", "relight", "lowres32", "jpeg20")
HARSH_CONDITIONS = ("shadow", "dark", "nir")

ConditionName = Enum("ConditionName", {name: name for name in CONDITIONS}, type=str)
CONDITION_HELP = "evaluate under a camera condition: " + "; ".join(f"{k}: {v}" for k, v in CONDITIONS.items())
