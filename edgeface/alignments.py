"""The names of the landmark alignments a crop can be cut with: recorded by galleries, prepared folders and model
manifests. A ground-floor module (no numpy, no cv2), so the manifest can check them without importing the vision
code."""

YUNET_ALIGNMENT = "yunet-5pt"
BLAZEFACE_ALIGNMENT = "blazeface-4pt"
# YuNet's 5 points onto dlib's 150x150 face chip (the dlib ResNet's own framing; fitted by
# benchmarks/dlib_chip_template.py): the only alignment whose chip is not the ArcFace 112x112 template
DLIB_CHIP_ALIGNMENT = "yunet-dlib150"
ALIGNMENTS = (YUNET_ALIGNMENT, BLAZEFACE_ALIGNMENT, DLIB_CHIP_ALIGNMENT)
