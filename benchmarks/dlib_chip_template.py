"""Fit, then check, the `yunet-dlib150` alignment: where YuNet's five points fall on dlib's own 150x150 face chip.

    python benchmarks/dlib_chip_template.py [--photos 600] [--check 300]

dlib's ResNet was trained on chips cut by its own 5-point predictor (`get_face_chip`, 150 px, padding 0.25). A device
without dlib has only YuNet's points, which mark other spots (YuNet's eye point is the eye centre, dlib's are eye
corners). So: cut dlib's chip of each of the first `--photos` CelebA photos (YuNet's box -> dlib's predictor), run
YuNet on the chip, and take the median of its points: the template YuNet's points are mapped to
(`edgeface.vision.align.DLIB_CHIP_TEMPLATE`). The check, on the next `--check` photos (not used to fit): how far
YuNet's points land from the template on dlib's chips (pixels, 150 px chip), and how close the YuNet-aligned chip is
to dlib's own chip (the port's cosine between the two embeddings).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import CELEBA, save

from edgeface.runtime.interpreter import Model
from edgeface.training.train.dlib_port import ensure_dlib_port
from edgeface.vision.align import DLIB_CHIP_SIZE, DLIB_CHIP_TEMPLATE, align_face
from edgeface.vision.detect import FaceFinder, main_face
from edgeface.vision.detector_options import DLIB_CHIP_ALIGNMENT
from edgeface.vision.embed import DLIB_DIVISOR, DLIB_MEAN_RGB, DlibEmbedder
from edgeface.vision.face import Face
from edgeface.vision.image import read_image


def dlib_chip(dlib: DlibEmbedder, image: np.ndarray, face: Face) -> np.ndarray:
    x0, y0, x1, y1 = (round(float(v)) for v in face.box)
    shape = dlib.predictor(image, dlib.dlib.rectangle(x0, y0, x1, y1))
    return np.asarray(dlib.dlib.get_face_chip(image, shape, size=DLIB_CHIP_SIZE, padding=0.25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=600, help="photos the template is fitted on")
    parser.add_argument("--check", type=int, default=300, help="further photos it is checked on")
    args = parser.parse_args()
    started = time.time()
    finder, dlib = FaceFinder(), DlibEmbedder(network=False)
    port = Model(ensure_dlib_port())
    mean = np.array(DLIB_MEAN_RGB, np.float32)

    def embed(chip: np.ndarray) -> np.ndarray:
        vec = port(((chip.astype(np.float32) - mean) / DLIB_DIVISOR)[None])[0]
        return vec / np.linalg.norm(vec)

    points, cosines, used = [], [], 0
    photos = sorted((CELEBA / "images").glob("*.jpg"))
    for path in photos:
        if len(points) >= args.photos + args.check:
            break
        image = read_image(path)
        faces = finder.find(image)
        if not faces:
            continue
        face = main_face(faces, image.shape)
        chip = dlib_chip(dlib, image, face)
        on_chip = finder.find(chip)
        if len(on_chip) != 1:
            continue
        points.append(on_chip[0].keypoints)
        if len(points) > args.photos:  # a check photo: the YuNet chip against dlib's own
            ours = align_face(image, face, DLIB_CHIP_ALIGNMENT)
            cosines.append(float(embed(chip) @ embed(ours)))
        used += 1
    stack = np.stack(points)
    fitted = np.median(stack[: args.photos], axis=0)
    check = stack[args.photos :]
    error = np.linalg.norm(check - DLIB_CHIP_TEMPLATE, axis=-1)
    cos = np.array(cosines)
    result = {
        "photos_fitted": args.photos, "photos_checked": len(check),
        "template_fitted": np.round(fitted, 1).tolist(), "template_shipped": DLIB_CHIP_TEMPLATE.tolist(),
        "shipped_vs_fitted_px": float(np.abs(fitted - DLIB_CHIP_TEMPLATE).max()),
        "check_point_error_px": {"median": float(np.median(error)), "p90": float(np.percentile(error, 90))},
        "check_cosine_yunet_chip_vs_dlib_chip": {"median": float(np.median(cos)), "p05": float(np.percentile(cos, 5)),
                                                 "min": float(cos.min())},
    }
    print(f"fitted template {result['template_fitted']} (shipped differs by at most "
          f"{result['shipped_vs_fitted_px']:.2f} px); on {len(check)} held-out chips YuNet's points land "
          f"{result['check_point_error_px']['median']:.2f} px (median) from it; the YuNet chip's embedding has cosine "
          f"{result['check_cosine_yunet_chip_vs_dlib_chip']['median']:.4f} (median) to dlib's own chip's")
    save("dlib_chip_template.json", result, started)


if __name__ == "__main__":
    main()
