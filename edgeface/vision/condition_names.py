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
}

ConditionName = Enum("ConditionName", {name: name for name in CONDITIONS}, type=str)
CONDITION_HELP = "evaluate under a camera condition: " + "; ".join(f"{k}: {v}" for k, v in CONDITIONS.items())
