"""Recognition commands, device half: detect, verify, enroll, recognize, serve."""

from __future__ import annotations

import csv as csv_module
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeface.cli.base import app
from edgeface.cli.options import (
    PHOTO_OPTIONS,
    VIDEO_OPTIONS,
    GalleryOpt,
    Json,
    event_options,
    finite,
    pipeline_options,
)
from edgeface.errors import EdgefaceError
from edgeface.recognize.config import DEFAULT_STREAM_FPS, PipelineConfig
from edgeface.recognize.sinks import EventOptions


@app.command("detect", rich_help_panel="4. recognise on the device")
@pipeline_options("detector", "detect_size")
def detect_command(
    target: Annotated[Path, typer.Argument(help="an image or a folder of images")],
    config: PipelineConfig,
    csv: Annotated[bool, typer.Option("--csv", help="CSV in face_recognition's order: file,top,right,bottom,left")]
    = False,
    json_out: Json = False,
) -> None:
    """Find faces: box, landmarks and detection score of every face in an image or a folder (no model needed)."""
    from edgeface.api import detect_faces
    from edgeface.tables import print_json, print_table

    found = detect_faces(target, config.detector, config.detect_size)
    for path, why in found["skipped"].items():
        print(f"edgeface: skipped {path!r}: {why}", file=sys.stderr)
    if csv:  # the csv module quotes commas, quotes and newlines in file names
        writer = csv_module.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["file", "top", "right", "bottom", "left"])
        writer.writerows([r["file"], *r["top_right_bottom_left"]] for r in found["faces"])
        return
    if json_out:
        print_json(found)
        return
    print_table(f"faces in {target} ({config.detector})", ["file", "box x0,y0,x1,y1", "detection"],
                [(Path(r["file"]).name, ", ".join(f"{v:.0f}" for v in r["box"]), f"{r['detection']:.3f}")
                 for r in found["faces"]])


@app.command("verify", rich_help_panel="4. recognise on the device")
@pipeline_options(*PHOTO_OPTIONS)
def verify_command(
    a: Annotated[Path, typer.Argument(help="photo of one person")],
    b: Annotated[Path, typer.Argument(help="photo of the same person, or not")],
    config: PipelineConfig,
    all_faces: Annotated[bool, typer.Option(help="compare every face of A with every face of B; the best pair "
                                                 "decides")] = False,
    json_out: Json = False,
) -> None:
    """1:1: are the main faces of two photos the same person? Exit 0 same, 1 different, 2 error."""
    from edgeface.recognize.pipeline import Pipeline
    from edgeface.tables import print_json, print_table

    pipeline = Pipeline(config)
    result = {"a": str(a), "b": str(b), **pipeline.verify(a, b, all_faces=all_faces), "model": pipeline.embedder.name}
    if json_out:
        print_json(result)
    else:
        print_table("edgeface verify", ["", "value"], [
            ("same person", "yes" if result["same"] else "no"), ("score (cosine)", f"{result['score']:.4f}"),
            ("threshold", f"{result['threshold']:.4f}"), ("model", result["model"]),
            *((f"face compared in {name}", ", ".join(f"{v:.0f}" for v in box))
              for name, box in zip((a.name, b.name), result["boxes"], strict=True))])
        crowded = [f"{path.name} has {n} faces" for path, n in zip((a, b), result["faces"], strict=True) if n > 1]
        if crowded and not all_faces:
            print(f"note: {' and '.join(crowded)}; the largest, most central was compared (--all-faces compares "
                  "every pair)", file=sys.stderr)
    raise typer.Exit(0 if result["same"] else 1)


FACE_ROWS_SHOWN = 60


@app.command("enroll", rich_help_panel="4. recognise on the device")
@pipeline_options(*PHOTO_OPTIONS, "light_gates")
def enroll_command(
    config: PipelineConfig,
    name: Annotated[Optional[str], typer.Argument(help="the person's name")] = None,
    images: Annotated[Optional[list[Path]], typer.Argument(help="photos of that person")] = None,
    folder: Annotated[Optional[Path], typer.Option("--dir", help="enrol <person>/<images> folders at once")] = None,
    gallery: GalleryOpt = None,
    store_faces: Annotated[bool, typer.Option(
        help="keep each enrolled face (a small crop) so 'gallery upgrade' can move the gallery to a new model; "
             "--no-store-faces keeps templates only")] = True,
    new_person: Annotated[bool, typer.Option(
        "--new-person", help="enrol faces that already match another enrolled person (a look-alike, a twin)")] = False,
    json_out: Json = False,
) -> None:
    """Detect, quality-check (one face, size, head turn, sharpness, not already someone else), embed and store
    templates for one or many people."""
    from edgeface.recognize.enroll import person_folders, require_enrolled
    from edgeface.recognize.pipeline import Pipeline
    from edgeface.tables import print_json, print_table

    if folder is not None:
        people = person_folders(folder)
    elif name and images:
        people = {name: list(images)}
    else:
        raise EdgefaceError("give NAME IMAGE... or --dir DIR")
    pipeline = Pipeline.for_gallery(gallery, config)
    store = pipeline.open_gallery(gallery)
    results = [pipeline.enroll(store, person, paths, store_faces, new_person)
               for person, paths in people.items()]
    if json_out:
        print_json([r.to_dict() for r in results])
    else:
        print_table(f"enrolled into {store.path}", ["person", "accepted", "rejected", "already enrolled", "templates"],
                    [(r.name, len(r.accepted), len(r.rejected), len(r.skipped), r.templates) for r in results])
        for r in results:
            for path, why in r.rejected.items():
                print(f"rejected {path}: {why}", file=sys.stderr)
        skipped = sum(len(r.skipped) for r in results)
        if skipped:
            print(f"skipped {skipped} photo(s) already in the gallery (same file contents)", file=sys.stderr)
    require_enrolled(results)


EventsOpt = Annotated[Optional[list[str]], typer.Option(
    "--events", help="also send debounced arrived/left events to mqtt(s)://HOST[:PORT]/TOPIC, http(s)://URL (POST) "
                     "or FILE.jsonl; repeatable")]


@app.command("recognize", rich_help_panel="4. recognise on the device")
@pipeline_options(*VIDEO_OPTIONS)
@event_options
def recognize_command(
    source: Annotated[str, typer.Option(help="camera index, video file, rtsp:// URL, image or folder of images")],
    config: PipelineConfig,
    event_options: EventOptions,
    gallery: GalleryOpt = None,
    output: Annotated[Optional[Path], typer.Option("--output", "--out", "-o", help="write annotated frames to this "
                                                                             "video (.mp4)")] = None,
    show: Annotated[bool, typer.Option(help="show annotated frames in a window")] = False,
    max_frames: Annotated[int, typer.Option(help="stop after this many frames (0: until the source ends)")] = 0,
    loop: Annotated[bool, typer.Option(help="replay a video file from the start when it ends")] = False,
    max_seconds: Annotated[float, typer.Option(help="stop after this many seconds (0: no limit)", callback=finite)] = 0,
    profile: Annotated[bool, typer.Option(help="print per-stage times")] = False,
    events: EventsOpt = None,
    overlay_fps: Annotated[bool, typer.Option(help="draw the FPS counter on --output/--show frames")] = False,
    camera: Annotated[Optional[str], typer.Option(help="the camera's name in events (default: the source, its "
                                                        "password hidden)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="one JSON event per recognised face, per line")] = False,
) -> None:
    """Recognise enrolled people in a camera, video, stream or images; unknown faces are reported as unknown."""
    from edgeface.recognize.loop import run
    from edgeface.recognize.pipeline import Pipeline
    from edgeface.tables import print_table

    pipeline = Pipeline.for_gallery(gallery, config)
    store = pipeline.open_gallery(gallery, create=False, read_only=True)
    if pipeline.warning:
        print(f"edgeface: warning: {pipeline.warning}", file=sys.stderr)
    face_rows: list[dict] = []  # the first FACE_ROWS_SHOWN, for the table
    total = [0]

    def keep_rows(rows: list[dict]) -> None:
        total[0] += len(rows)
        face_rows.extend(rows[: FACE_ROWS_SHOWN - len(face_rows)])

    summary = run(source, pipeline.frames(store), output=output, show=show, json_events=json_out, max_frames=max_frames,
                  loop=loop, max_seconds=max_seconds, events=events, overlay_fps=overlay_fps,
                  on_faces=None if json_out else keep_rows, label=camera,
                  event_options=event_options)
    if json_out:
        print(json.dumps({"summary": summary}))
        return
    shown, source = face_rows, summary["source"]  # the source as it may be shown (no password)
    print_table(f"faces in {source}", ["file / frame", "name", "score", "box x0,y0,x1,y1", "note"],
                [(Path(r["source"]).name if r["source"] != source else r["frame"], r["name"] or "unknown",
                  "" if r["score"] is None else f"{r['score']:.3f}", ", ".join(f"{v:.0f}" for v in r["box"]),
                  r.get("reason", "")) for r in shown])
    if total[0] > len(shown):
        print(f"... and {total[0] - len(shown)} more faces (--json lists every one)")
    print_table(f"recognize {source}", ["", "value"], [
        ("frames", summary["frames"]), ("faces", summary["faces"]), ("FPS", summary["fps"]),
        ("dropped (stale) frames", summary["dropped_frames"]), ("unreadable frames", summary["unreadable_frames"]),
        *((f"seen: {k}", v) for k, v in sorted(summary["names"].items())),
        ("unknown faces", summary["unknown_faces"]),
        *((f"events to {e['sink']}", f"{e['sent']} sent, {e['dropped']} dropped, {e['failed']} failed")
          for e in summary.get("events", [])),
        *((("video", f"{video['path']} ({video['codec']})"),) if (video := summary.get("video")) else ())])
    if summary.get("video") and summary["video"]["codec"] != "H.264":
        print("note: this OpenCV build has no H.264 encoder; for a file every player and browser takes: ffmpeg -i "
              f"{summary['video']['path']} -c:v libx264 -pix_fmt yuv420p out-h264.mp4", file=sys.stderr)
    if profile:
        print_table("per-stage time", ["stage", "mean ms", "p50 ms", "p90 ms", "share"],
                    [(k, v["mean_ms"], v["p50_ms"], v["p90_ms"], f"{100 * v['share']:.0f} %")
                     for k, v in summary["stages"].items()])


@app.command("serve", rich_help_panel="4. recognise on the device")
@pipeline_options(*VIDEO_OPTIONS)
@event_options
def serve_command(
    config: PipelineConfig,
    event_options: EventOptions,
    gallery: GalleryOpt = None,
    source: Annotated[Optional[str], typer.Option(
        help="camera index, video file or rtsp:// URL to recognise continuously (none: the API alone)")] = None,
    camera: Annotated[Optional[str], typer.Option(help="the camera's name in events (default: the source)")] = None,
    host: Annotated[str, typer.Option(help="address to listen on; anything but loopback needs --token-file")] =
    "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (0: any free port, printed at start)")] = 8080,
    token_file: Annotated[Optional[Path], typer.Option(
        help="file (mode 600) holding the token every request must carry")] = None,
    loop: Annotated[bool, typer.Option(help="replay a video --source from the start when it ends")] = False,
    events: EventsOpt = None,
    stream_fps: Annotated[float, typer.Option(help="at most this many live-view frames a second per viewer",
        callback=finite)] =
    DEFAULT_STREAM_FPS,
) -> None:
    """Recognise on a camera and serve a REST API (/docs) and a web page: enrol from the browser, watch, see who
    came."""
    from edgeface.serve.server import serve
    from edgeface.serve.service import ServeConfig

    serve(ServeConfig(pipeline=config, gallery=gallery, source=source, camera=camera, loop=loop,
                      events=list(events or []), stream_fps=stream_fps,
                      event_options=event_options), host, port, token_file)
