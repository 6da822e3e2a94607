"""`edgeface gallery ...`: list, upgrade, remove, rename, export, import enrolled people."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from edgeface.cli.base import app
from edgeface.cli.options import GalleryOpt, Json, pipeline_options
from edgeface.recognize.config import PipelineConfig

gallery_app = typer.Typer(help="List, remove, rename, export and import enrolled people.", no_args_is_help=True)


app.add_typer(gallery_app, name="gallery", rich_help_panel="4. recognise on the device")


def _plain_gallery(gallery: Path | None):
    from edgeface.recognize.gallery import Gallery

    return Gallery(gallery, create=False)


@gallery_app.command("list")
def gallery_list(
    gallery: GalleryOpt = None,
    name: Annotated[Optional[str], typer.Option(help="only people whose name contains this (any case)")] = None,
    limit: Annotated[int, typer.Option(help="list at most this many people (0: all)", min=0)] = 50,
    json_out: Json = False,
) -> None:
    """How many people and templates, the model, and the first --limit people (by name) with their templates."""
    from edgeface.tables import print_json, print_table

    store = _plain_gallery(gallery)
    store.check()
    counts, people = store.counts(), store.people(name, limit or None)
    if json_out:
        print_json({"gallery": str(store.path), "model": store.meta("model"),
                    "model_sha256": store.meta("model_sha256"), "total_people": counts["people"],
                    "total_templates": counts["templates"], "people": people})
        return
    print_table(f"{store.path}: {counts['people']} people, {counts['templates']} templates (model "
                f"{store.meta('model') or str(store.meta('model_sha256'))[:12]})", ["person", "templates", "quality"],
                [(p["name"], p["templates"], p["quality"]) for p in people])
    if len(people) == limit:
        print(f"the first {limit} people{f' matching {name!r}' if name else ''} by name: --limit 0 lists all, --name "
              "filters", file=sys.stderr)


def say(message: str, payload: dict, json_out: bool) -> None:
    """One line for people, or the same facts as JSON."""
    from edgeface.tables import print_json

    if json_out:
        print_json(payload)
    else:
        print(message)


@gallery_app.command("upgrade")
@pipeline_options("model", "detector", "detect_size")
def gallery_upgrade(
    config: PipelineConfig,
    gallery: GalleryOpt = None,
    json_out: Json = False,
) -> None:
    """Move the gallery to MODEL (default: the shipped one): every enrolled face is re-embedded from the face the
    gallery keeps, all at once or not at all; galleries without kept faces name the people to enrol again."""
    from edgeface.recognize.gallery import model_ref
    from edgeface.recognize.pipeline import Pipeline
    from edgeface.recognize.upgrade import upgrade_gallery

    pipeline = Pipeline(config)
    store = _plain_gallery(gallery)
    result = upgrade_gallery(store, pipeline.finder, pipeline.embedder, model_ref(config.model))
    name = pipeline.embedder.name
    what = (f"re-embedded {result['templates']} templates of {result['people']} people with {name} "
            f"(model {str(result['model_before'])[:12]} -> {result['model_after'][:12]}; {result['found_again']} "
            "faces' landmarks found again on their kept crops, the others' stored ones kept)"
            if result["upgraded"] else f"{store.path} is already on {name}: nothing to do")
    say(what, {**result, "model": name}, json_out)


@gallery_app.command("remove")
def gallery_remove(name: str, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Delete a person and all their templates."""
    store = _plain_gallery(gallery)
    store.remove(name)
    say(f"removed {name}", {"gallery": str(store.path), "removed": name}, json_out)


@gallery_app.command("rename")
def gallery_rename(old: str, new: str, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Rename a person."""
    store = _plain_gallery(gallery)
    store.rename(old, new)
    say(f"renamed {old} -> {new}", {"gallery": str(store.path), "renamed": old, "to": new}, json_out)


@gallery_app.command("export")
def gallery_export(out: Path, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Write a portable .npz (plain arrays + JSON header, no pickle), mode 0600."""
    store = _plain_gallery(gallery)
    path = store.export(out)
    count = sum(p["templates"] for p in store.people())
    say(f"wrote {path} ({count} templates)", {"gallery": str(store.path), "export": str(path), "templates": count},
        json_out)


@gallery_app.command("import")
def gallery_import(file: Path, gallery: GalleryOpt = None, json_out: Json = False) -> None:
    """Merge an exported gallery made with the same model; photos already in the gallery are skipped."""
    from edgeface.recognize.gallery import Gallery, read_export

    export = read_export(file)  # checked whole before a gallery is opened, let alone created
    store = Gallery(gallery)
    result = store.import_export(export)
    say(f"imported {result['added']} templates; skipped {result['skipped_duplicates']} already in the gallery",
        {"gallery": str(store.path), "import": str(file), **result}, json_out)
