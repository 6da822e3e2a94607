"""``edgeface recognize``: detect, align, embed and match every frame against the gallery.

Everything heavy is created once (detector and embedder interpreters, the gallery's template matrix, the video
writer) and reused per frame; the template matrix is re-read only when another process commits an enrolment.
Faces turned too far from the camera (``edgeface.vision.quality``) or narrower than ``min_face`` are reported as
unknown, with the reason, without being embedded: a profile's embedding, or a 26 px face's, can sit close to
anybody's (in the Hamilton clip a 26 px pianist matched a gallery stranger).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from edgeface.errors import EdgefaceError
from edgeface.recognize.capture import Capture, SourceLost
from edgeface.recognize.config import DEFAULT_CONFIRM, DEFAULT_SMOOTH, check_tracking
from edgeface.recognize.events import Events
from edgeface.recognize.gallery import Gallery, GalleryMoved
from edgeface.recognize.results import RecognisedFace
from edgeface.recognize.sinks import EventOptions, redact
from edgeface.recognize.tracking import Tracker
from edgeface.vision.align import align_face
from edgeface.vision.detect import FaceFinder
from edgeface.vision.detector_options import (
    DEFAULT_DETECT_EVERY,
    DEFAULT_MAX_TURN,
    DEFAULT_MIN_FACE,
    check_min_face,
)
from edgeface.vision.embed import Embedder
from edgeface.vision.face import Face, iou
from edgeface.vision.quality import Gates, face_measures, head_turn


class Timings:
    """Per-stage wall times in milliseconds: exact totals, percentiles over the most recent frames.

    Bounded on purpose: the loop runs for weeks on a board, so it must not keep every sample."""

    def __init__(self, window: int = 4096) -> None:
        self.recent: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=window))
        self.total: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)

    def add(self, stage: str, seconds: float) -> None:
        ms = seconds * 1e3
        self.recent[stage].append(ms)
        self.total[stage] += ms
        self.count[stage] += 1

    def summary(self) -> dict[str, dict[str, float]]:
        grand = sum(self.total.values()) or 1.0
        return {k: {"mean_ms": self.total[k] / self.count[k], "p50_ms": float(np.percentile(v, 50)),
                    "p90_ms": float(np.percentile(v, 90)), "share": self.total[k] / grand}
                for k, v in self.recent.items() if v}


THUMB, SCENE_CUT = (32, 18), 20.0  # the thumbnail a cut is looked for in, and the mean change that makes one


class Recognizer:
    """One frame in, one list of recognised faces out."""

    def __init__(self, embedder: Embedder, gallery: Gallery, threshold: float, finder: FaceFinder,
                 min_face: int = DEFAULT_MIN_FACE, smooth: int = DEFAULT_SMOOTH, max_turn: float = DEFAULT_MAX_TURN,
                 confirm: int = DEFAULT_CONFIRM, detect_every: int = DEFAULT_DETECT_EVERY,
                 moved: Callable[[], Recognizer] | None = None, gates: Gates | None = None) -> None:
        """Made by ``Pipeline.frames``, which owns every setting: ``finder`` is the pipeline's, so a photo gets the
        same retries here as in ``verify`` and enrolment, and video frames its ``video`` detector (YuNet's gives
        faces the landmarks the model was trained on and can follow them). ``moved``: the recogniser to carry on
        with when another process moves the gallery to a new model (``gallery upgrade``) mid-run."""
        self.moved = moved
        self.gates = gates or Gates()  # the model's light limits: a face outside them is reported, never named
        check_tracking(smooth, max_turn, confirm, detect_every)
        self.confirm, self.detect_every = confirm, detect_every
        self.embedder, self.gallery, self.threshold, self.max_turn = embedder, gallery, threshold, max_turn
        self.min_face = check_min_face(min_face)
        self.finder = finder
        self.detector = finder.video
        gallery.templates()  # load (and index) the gallery now, not on the first face
        self.tracker = Tracker(window=smooth)
        self.timings = Timings()
        self.follow = getattr(self.detector, "follow", None)  # YuNet's; other detectors detect every frame
        self.last: list[RecognisedFace] = []  # the previous frame's faces, followed until the next key frame
        self.lost: list[RecognisedFace] = []  # faces following lost since the last key frame, looked for on it
        self.since_key = detect_every  # the first frame is a key frame
        self.thumb: np.ndarray | None = None  # the frame before, tiny: to see a cut (``_scene_cut``)
        self.ended: list[int] = []  # the tracks the last frame ended (for the events' departures)

    def process(self, frame_bgr: np.ndarray, still: bool = False) -> list[RecognisedFace]:
        """Every face of one frame, recognised. Video frames between key frames (``detect_every``) follow the
        faces of the frame before instead of detecting the whole frame and embedding again: a face keeps its
        track, name, score and the size its last detection measured, with its place and landmarks found anew. A
        face lost on the way makes the next frame a key frame, as do a cut (``_scene_cut``) and the frame after it;
        a new face waits at most ``detect_every - 1`` frames to be found. On a key frame, a tracked face of the
        frame before (or lost since the last key frame) that the whole-frame detection misses is followed too
        (``_kept``); an uncertain candidate on a face already known is followed rather than looked at closer, and
        a face whose identity has settled is embedded on every other key frame (``_rested``). Cuts and
        ``detect_every`` 1 detect and embed afresh."""
        try:
            results = self._process(frame_bgr, still)
        except GalleryMoved:
            if self.moved is None:
                raise
            self._carry_on(self.moved())
            results = self._process(frame_bgr, still)
        self.ended = self.tracker.take_ended()
        return results

    def _carry_on(self, other: Recognizer) -> None:
        """Take over ``other``'s model, detector, gallery connection and decisions (the gallery's new model); every
        track ends, since their embeddings were the old model's."""
        for attribute in ("embedder", "gallery", "threshold", "max_turn", "finder", "detector", "follow", "moved",
                          "gates"):
            setattr(self, attribute, getattr(other, attribute))
        self.tracker.reset()
        self.last, self.lost, self.since_key = [], [], self.detect_every

    def _process(self, frame_bgr: np.ndarray, still: bool) -> list[RecognisedFace]:
        key = still or self.follow is None or self.since_key + 1 >= self.detect_every
        cut = self.follow is not None and self.detect_every > 1 and not still and self._scene_cut(frame_bgr)
        if key or cut:
            keyed = not (still or cut or self.follow is None or self.detect_every == 1)
            found = self.recognise(frame_bgr, still, known=self.last if keyed else None)
            if not still and self.follow is not None:
                found += self._kept(frame_bgr, found)
            # the frame after a cut is a key frame too: an edit's first frame is often still half the shot before
            # (in the demo clip a face came into view one frame after a cut and waited for the next key frame)
            self.last, self.lost, self.since_key = found, [], self.detect_every - 1 if cut else 0
            return found
        followed, lost = self._followed(frame_bgr, self.last)
        self.lost += lost
        if lost:
            self.since_key = self.detect_every  # one left, or turned: look at the whole frame next
        self.since_key += 1
        self.last = followed
        return followed

    def _scene_cut(self, frame_bgr: np.ndarray) -> bool:
        """Has the picture changed as a whole since the frame before (a cut in an edited video, a camera turned
        or covered)? Then nothing there is worth following and every face is new: the frame becomes a key frame.
        The mean change of a 32x18 thumbnail, under 0.1 ms: in the demo clip its three cuts change it by 26-29
        grey levels, the largest change within a shot was 12.4."""
        h, w = frame_bgr.shape[:2]  # every n-th pixel first, ~4 per thumbnail pixel: 1.3 ms -> 0.05 ms at 1080p
        step = max(1, min(h // (4 * THUMB[1]), w // (4 * THUMB[0])))
        thumb = cv2.resize(frame_bgr[::step, ::step], THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)
        before, self.thumb = self.thumb, thumb
        return before is not None and float(np.abs(thumb - before).mean()) > SCENE_CUT

    def _followed(self, frame_bgr: np.ndarray,
                  faces: list[RecognisedFace]) -> tuple[list[RecognisedFace], list[RecognisedFace]]:
        """``faces`` found again where they were (``YuNet.follow``), each keeping its track, name and score; and
        the faces that were not."""
        t = time.perf_counter()
        followed, lost = [], []
        for r in faces:
            face = self.follow(frame_bgr, r.box, bgr=True)
            if face is None:
                lost.append(r)
                continue
            moved = RecognisedFace.detected(face, r.turn, r.reason)
            followed.append(replace(moved, name=r.name, score=r.score, candidate=r.candidate, track=r.track))
            if r.track is not None:
                self.tracker.move(r.track, face.box)
        self.timings.add("follow", time.perf_counter() - t)
        return followed, lost

    def _kept(self, frame_bgr: np.ndarray, found: list[RecognisedFace]) -> list[RecognisedFace]:
        """Tracked faces of the frame before, or lost by following since the last key frame, that this key
        frame's detection missed, followed instead.

        Why: a dim or distant face scores near the detector's threshold and comes and goes from frame to frame
        (in the demo clip, audience faces at 0.6-0.7 missed one frame in three); following looks again in a crop
        around it with the first look's lower floor, so the face, its track and its name stay. Only faces on a
        live track are kept: a face the whole-frame detection has not seen for the tracker's ``max_age`` key frames
        is let go, so a false detection cannot live on by being followed."""
        boxes = np.array([f.box for f in found], np.float32).reshape(-1, 4)

        def new(r: RecognisedFace) -> bool:  # no face found this frame is already it (the tracker's overlap rule)
            return not len(boxes) or iou(np.array(r.box, np.float32), boxes).max() < self.tracker.min_iou

        missed = [r for r in self.last + self.lost if self.tracker.is_live(r.track) and new(r)]
        return [r for r in self._followed(frame_bgr, missed)[0] if new(r)] if missed else []

    def recognise(self, frame_bgr: np.ndarray, still: bool = False,
                  known: list[RecognisedFace] | None = None) -> list[RecognisedFace]:
        """Every face of one frame detected, embedded and matched. ``still``: a photo on its own, unrelated to the
        one before: no track carries over or needs confirming, and detection retries as for any photo
        (``detect_with_retries``). ``known``: the faces of the frame before, on a key frame of a video followed
        between key frames; the detector follows an uncertain candidate on one of them instead of looking closer,
        and a face on a settled track is embedded on every other key frame only (``_rested``)."""
        t = time.perf_counter()
        if still:
            self.tracker.reset()
        known = [r for r in known or [] if r.track is not None]
        boxes = np.array([r.box for r in known], np.float32).reshape(-1, 4)
        faces = self.finder.find(frame_bgr, bgr=True) if still else \
            self.detector.detect(frame_bgr, bgr=True, **({"known": boxes} if len(boxes) else {}))
        rested = self._rested(faces, known, boxes)
        turns = [rested[i].turn if i in rested else self.finder.turn(frame_bgr, f, bgr=True) if f.width >= self.min_face
                 else head_turn(f.keypoints) for i, f in enumerate(faces)]
        results = [RecognisedFace.detected(f, turn, "too small" if f.width < self.min_face else
                                           "turned away" if turn > self.max_turn else None)
                   for f, turn in zip(faces, turns, strict=True)]
        usable = [i for i, r in enumerate(results) if r.reason is None]
        embedded = [i for i in usable if i not in rested]
        t1 = time.perf_counter()
        self.timings.add("detect", t1 - t)
        if not usable:
            if not still:
                self.tracker.age()
            return results
        embeddings: dict[int, np.ndarray] = {}
        if embedded:
            chip = self.embedder.alignment
            crops = {i: cv2.cvtColor(align_face(frame_bgr, faces[i], chip), cv2.COLOR_BGR2RGB) for i in embedded}
            if self.gates.active:  # too dark, uneven, blurred or noisy for this model: reported, never named
                for i, crop in list(crops.items()):
                    why = self.gates.reason(face_measures(crop, frame_bgr, faces[i]))
                    if why is not None:
                        results[i] = replace(results[i], reason=why)
                        del crops[i]
                usable = [i for i in usable if i in crops or i in rested]
                if not usable:
                    if not still:
                        self.tracker.age()
                    return results
            t2 = time.perf_counter()
            self.timings.add("align", t2 - t1)
            if crops:
                embeddings = dict(zip(crops, self.embedder.embed(np.stack(list(crops.values()))), strict=True))
            t1 = time.perf_counter()
            self.timings.add("embed", t1 - t2)
        tracks, smoothed = self.tracker.update(np.stack([faces[i].box for i in usable]),
                                               [embeddings.get(i) for i in usable])
        fresh = [k for k, i in enumerate(usable) if i in embeddings]
        matches = dict(zip(fresh, self.gallery.match(np.stack([smoothed[k] for k in fresh]), self.threshold)
                           if fresh else [], strict=True))
        self.timings.add("match", time.perf_counter() - t1)
        need = 1 if still else self.confirm
        for k, (i, track) in enumerate(zip(usable, tracks, strict=True)):
            if k in matches:
                m = matches[k]
                held = self.tracker.confirmed(track, m.name, need)
                results[i] = replace(results[i], name=m.name if held else None, score=m.score,
                                     candidate=m.person, track=track, settled=held)
            else:  # rested: the name, score and candidate its last embedding gave
                r = rested[i]
                results[i] = replace(results[i], name=r.name, score=r.score, candidate=r.candidate, track=track,
                                     settled=r.settled)
        return results

    def _rested(self, faces: list[Face], known: list[RecognisedFace],
                boxes: np.ndarray) -> dict[int, RecognisedFace]:
        """The faces of a key frame that keep what their track knows instead of being embedded again, by index:
        each is on a face of the frame before (the tracker's overlap rule) whose track may rest
        (``Tracker.may_rest``: settled, and embedded on its last key frame). Why: a face that has held one name,
        or none, for ``confirm`` embeddings rarely changes in a fraction of a second, and embedding is a quarter of
        a key frame's time (the default model, on the demo clip); every other key frame still checks it, and a new
        or unsettled face is embedded on every key frame. A rested face keeps the head turn measured when it was
        last embedded."""
        rested: dict[int, RecognisedFace] = {}
        taken: set[int] = set()  # a known face rests one face of this frame at most
        for i, f in enumerate(faces):
            if not len(boxes) or f.width < self.min_face:
                continue
            overlap = iou(f.box, boxes)
            best = int(np.argmax(overlap))
            if (overlap[best] >= self.tracker.min_iou and best not in taken
                    and self.tracker.may_rest(known[best].track, self.confirm)):
                rested[i] = known[best]
                taken.add(best)
        return rested


LABEL_FONT = cv2.FONT_HERSHEY_SIMPLEX


def label_style(height: int) -> tuple[float, int]:
    """Font scale and stroke for a frame's height: readable at 360p, not shouting at 4K."""
    return max(0.5, height / 1440), 1 if height < 1296 else 2


def label_layout(results: list[RecognisedFace], width: int,
                 height: int) -> list[tuple[RecognisedFace, str, tuple[int, int, int, int]]]:
    """Each face's label and where it goes: above its box (below at the top edge), else the nearest free place
    beside the labels already placed (``free_spot``), so none is cut off or covers another. A score only beside a
    name: an unknown face's best-candidate score means nothing to a viewer."""
    scale, thickness = label_style(height)
    placed: list[tuple[int, int, int, int]] = []
    out = []
    for r in sorted(results, key=lambda r: r.box[1]):
        x0, y0, _, y1 = (int(v) for v in r.box)
        label = f"{r.name} {r.score:.2f}" if r.name is not None and r.score is not None else r.label
        (w, h), base = cv2.getTextSize(label, LABEL_FONT, scale, thickness)
        box_w, box_h = min(w + 6, width), min(h + base + 4, height)
        left = min(max(0, x0), max(0, width - box_w))
        top = y0 - box_h if y0 - box_h >= 0 else min(max(0, y1), height - box_h)
        left, top = free_spot(left, top, box_w, box_h, width, height, placed)
        rect = (left, top, left + box_w, top + box_h)
        placed.append(rect)
        out.append((r, label, rect))
    return out


def free_spot(left: int, top: int, w: int, h: int, width: int, height: int,
              placed: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """The free place for a ``w`` x ``h`` label nearest to (``left``, ``top``) inside the frame: the wanted place
    itself, or one touching a placed label's edge (any free place can slide there). A frame too crowded for every
    label keeps the wanted place."""
    lefts = {left, *(p[2] for p in placed), *(p[0] - w for p in placed)}
    tops = {top, *(p[3] for p in placed), *(p[1] - h for p in placed)}
    spots = sorted((abs(y - top) + abs(x - left), y, x) for x in lefts for y in tops
                   if 0 <= x <= width - w and 0 <= y <= height - h)
    for _, y, x in spots:
        if not any(x < p[2] and p[0] < x + w and y < p[3] and p[1] < y + h for p in placed):
            return x, y
    return left, top


def draw(frame: np.ndarray, results: list[RecognisedFace], fps: float | None = None) -> None:
    """Boxes and labels (``label_layout``) on a filled background, readable on any frame; the FPS counter only when
    asked."""
    height, width = frame.shape[:2]
    scale, thickness = label_style(height)
    for r, label, (left, top, right, bottom) in label_layout(results, width, height):
        colour = (60, 170, 60) if r.name is not None else (60, 60, 200)
        x0, y0, x1, y1 = (int(v) for v in r.box)
        cv2.rectangle(frame, (x0, y0), (x1, y1), colour, 2)
        cv2.rectangle(frame, (left, top), (right, bottom), colour, -1)
        baseline = cv2.getTextSize(label, LABEL_FONT, scale, thickness)[1]
        cv2.putText(frame, label, (left + 3, bottom - baseline - 2), LABEL_FONT, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
    if fps is not None:
        text = f"{fps:.1f} FPS"
        (w, h), base = cv2.getTextSize(text, LABEL_FONT, 0.6, 2)
        cv2.rectangle(frame, (4, 4), (12 + w, 12 + h + base), (0, 0, 0), -1)
        cv2.putText(frame, text, (8, 8 + h), LABEL_FONT, 0.6, (255, 255, 255), 2, cv2.LINE_AA)


@contextlib.contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's own log silenced for a call whose failure edgeface reports itself."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


VIDEO_CODECS = {"avc1": "H.264", "mp4v": "MPEG-4 Part 2"}  # tried in order; VP9 is there but 50x too slow


class VideoOut:
    """Annotated frames to a video, written to a temp file and renamed when complete.

    ``close(keep=False)`` (a failed run) deletes the temp file: an earlier output is never replaced by a broken one.
    """

    def __init__(self, path: Path, fps: float) -> None:
        self.path = Path(path)
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if not folder.is_dir():
            raise EdgefaceError(f"--output folder does not exist: {folder}")
        if not os.access(folder, os.W_OK):
            raise EdgefaceError(f"--output folder is not writable: {folder}")
        self.tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps
        self.writer: cv2.VideoWriter | None = None
        self.codec: str | None = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            h, w = frame.shape[:2]
            # faces with names drawn on them: private to the user (0600) before the first byte is written
            os.close(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.chmod(self.tmp, 0o600)
            for codec in VIDEO_CODECS:  # H.264 where the OpenCV build has an encoder for it (pip's has none)
                with opencv_quiet():  # a codec that is not there is our note's to report, not OpenCV's [ERROR] lines
                    self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*codec), self.fps, (w, h))
                if self.writer.isOpened():
                    self.codec = VIDEO_CODECS[codec]
                    break
            else:
                raise EdgefaceError(f"cannot write video {self.path}")
        self.writer.write(frame)

    def close(self, keep: bool = True) -> None:
        if self.writer is None:
            return
        self.writer.release()
        self.writer = None
        if keep and self.tmp.exists():
            self.tmp.replace(self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM (how systemd stops the service) set ``stop`` instead of raising mid-frame: the
    loop finishes the frame, closes the video file, prints the summary and exits 0. A second signal exits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(source: str, recognizer: Recognizer, output: Path | None = None, show: bool = False,
        json_events: bool = False, max_frames: int = 0, loop: bool = False, max_seconds: float = 0,
        events: list[str] | None = None, overlay_fps: bool = False,
        on_faces: Callable[[list[dict]], object] | None = None,
        on_frame: Callable[[np.ndarray, list[RecognisedFace], float], object] | None = None,
        extra_sinks: list | None = None, stop: threading.Event | None = None, label: str | None = None,
        event_options: EventOptions | None = None) -> dict:
    """The loop: returns a summary (frames, faces, fps, names seen, dropped frames, stage timings).

    Every event names its source (the image file for folders, else the source given). Unrelated images never
    share face tracks: the tracker starts afresh for each photo of a folder. Embedding programs (``edgeface serve``)
    pass ``on_frame`` (each BGR frame, undrawn, with its results and the FPS so far: keep it cheap, it runs in the
    loop), ``extra_sinks`` for events (objects with ``send``/``close``) and a ``stop`` event of their own. Events name
    the ``camera`` (``label``, else the source) beside the source of each frame (the photo's file in a folder).
    """
    if max_frames < 0 or not (math.isfinite(max_seconds) and max_seconds >= 0):
        raise EdgefaceError("--max-frames and --max-seconds must be 0 (no limit) or more")
    if show:
        try:
            cv2.namedWindow("edgeface")
        except cv2.error:
            raise EdgefaceError("--show needs a display and an OpenCV build with GUI support "
                                "(opencv-python-headless has none): use --output instead") from None
    writer = VideoOut(output, 25.0) if output else None  # checks the folder before any work
    shown = redact(source)  # rtsp://user:password@... is never printed with its password
    sinks = Events(events or [], extra=extra_sinks, camera=label or shown, options=event_options,
                   people=recognizer.gallery.templates()[2],
                   model=recognizer.embedder.name) if events or extra_sinks else None
    seen: dict[str, int] = defaultdict(int)
    frames = faces = errors = strangers = 0
    started = time.perf_counter()
    fps = 0.0
    stop = stop or threading.Event()
    completed = False
    lost: str | None = None
    deadline = time.monotonic() + max_seconds if max_seconds else None
    with stop_on_signals(stop), Capture(source, loop=loop, stop=stop, deadline=deadline) as capture:
        if writer:
            writer.fps = capture.fps
        stills = capture.kind in ("folder", "image")
        try:
            t_wait = time.perf_counter()
            for frame in capture:
                recognizer.timings.add("wait", time.perf_counter() - t_wait)
                where = frame.source or shown
                if frame.image is None:
                    errors += 1
                    if json_events:
                        emit({"time": round(time.time(), 3), "source": where, "frame": frame.index,
                              "error": frame.error})
                    else:
                        print(f"edgeface: skipped frame {frame.index}: {frame.error}", file=sys.stderr)
                    t_wait = time.perf_counter()
                    continue
                results = recognizer.process(frame.image, still=stills)
                if sinks:
                    sinks.roster(recognizer.gallery.templates()[2])  # enrolments and removals made meanwhile
                    sinks.frame(results, where, frame.index, new_photo=stills, image=frame.image,
                                media_time=frame.media_time, ended=recognizer.ended)
                frames += 1
                faces += len(results)
                elapsed = time.perf_counter() - started
                fps = frames / elapsed if elapsed > 0 else 0.0
                for r in results:
                    if r.name is None:
                        strangers += 1
                    else:
                        seen[r.name] += 1
                if results and (json_events or on_faces):
                    rows = [{"source": where, "frame": frame.index, **r.to_dict()} for r in results]
                    for row in rows if json_events else []:
                        emit({"time": round(time.time(), 3), **row})
                    if on_faces:
                        on_faces(rows)
                if on_frame:
                    on_frame(frame.image, results, fps)
                if writer or show:
                    t = time.perf_counter()
                    draw(frame.image, results, fps if overlay_fps else None)
                    if writer:
                        t_draw = time.perf_counter()
                        recognizer.timings.add("draw", t_draw - t)
                        writer.write(frame.image)
                        t = t_draw
                    if show:
                        cv2.imshow("edgeface", frame.image)
                        if cv2.waitKey(1) & 0xFF == ord("q"):
                            break
                    recognizer.timings.add("encode" if writer else "draw", time.perf_counter() - t)
                if stop.is_set() or (max_frames and frames >= max_frames) or (max_seconds and elapsed >= max_seconds):
                    break
                t_wait = time.perf_counter()
            completed = True
        except SourceLost as exc:  # the camera or stream died: what was recorded is the user's, finalised
            lost, completed = str(exc), True
        finally:
            wall = time.perf_counter() - started  # the frame loop's own time: draining event queues is not in it
            if writer:
                writer.close(keep=completed and frames > 0)
            codec = writer.codec if writer else None
            sink_stats = sinks.close() if sinks else []
        interrupted = stop.is_set()  # read before the capture's own exit sets it
        dropped, kind = capture.dropped, capture.kind
    if lost:
        kept = f"; the {frames} frames recorded before are in {output}" if output and frames else ""
        raise EdgefaceError(f"{lost} after {frames} frames{kept}")
    if frames == 0 and errors:
        raise EdgefaceError(f"no frame of {shown} could be read ({errors} unreadable)")
    if frames == 0 and not interrupted and kind == "video":  # an empty folder is refused by Capture
        raise EdgefaceError(f"{shown} holds no frame to recognise")
    return {"source": shown, "frames": frames, "faces": faces, "unreadable_frames": errors,
            "dropped_frames": dropped, "seconds": round(wall, 3), "fps": round(frames / max(wall, 1e-9), 2),
            "names": dict(seen), "unknown_faces": strangers,
            "interrupted": interrupted, "stages": recognizer.timings.summary(),
            **({"events": sink_stats} if sinks else {}),
            **({"video": {"path": str(output), "codec": codec}} if output and codec else {})}
