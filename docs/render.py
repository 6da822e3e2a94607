"""Render every measured figure in the README and the docs from its results JSON, and the CLI reference from the
Typer app, so that neither can go stale.

    python docs/render.py           # rewrite the figures in README.md and docs/*.md, and docs/cli.md
    python docs/render.py --check   # exit 1 naming each figure (or page) that is out of date; what the tests run

A figure is a Markdown comment naming its source, followed by what it renders to, up to its closing comment:

    <!-- figure: {"file": "benchmarks/results/X.json", "rows": "results", "where": {"model": ["default"]},
                  "columns": [["model", "name"], ["LFW", "lfw_accuracy", "pct2"]]} -->
    ...the table...
    <!-- /figure -->

and a value inside prose is ``<!-- value: {"file": ..., "path": "a/b", "format": "pct2"} -->99.22 %<!-- /value -->``.
``rows`` and ``path`` walk the JSON by keys separated by ``/`` (a mapping of mappings becomes rows with its keys as
``key``; in a list, ``model=default,set=orl`` picks the one row with those fields); every table ends with a line
naming the results file, the command that made it and when.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURE = re.compile(r"<!-- figure: (\{.*?\}) -->\n(.*?)<!-- /figure -->", re.S)
VALUE = re.compile(r"<!-- value: (\{.*?\}) -->(.*?)<!-- /value -->", re.S)
PAGES = ("README.md", "docs/*.md")
CLI_PAGE = "docs/cli.md"
CLI_WIDTH = 80  # the reference shows --help as an 80-column terminal does (click's plain help, every flag whole)


class Stale(Exception):
    pass


def formatted(value: Any, how: str | None) -> str:
    """A JSON value as a table cell: ``pct1``/``pct2``/``pct3`` (a fraction as a percentage), ``f1``..``f4``,
    ``ms1``, ``mb1`` (bytes), ``int`` (thousands separated), ``x2`` (a ratio), a list joined by commas, else as it
    is."""
    if value is None:
        return ""
    if isinstance(value, list):  # a list of names
        return ", ".join(map(str, value)) or "none"
    if how is None or isinstance(value, str):
        return str(value)
    number = float(value)
    kinds = {"pct1": f"{number * 100:.1f} %", "pct2": f"{number * 100:.2f} %",
             "pct3": f"{number * 100:.3f} %", "f1": f"{number:.1f}",
             "f2": f"{number:.2f}", "f3": f"{number:.3f}", "f4": f"{number:.4f}", "ms1": f"{number:.1f} ms",
             "ms2": f"{number:.2f} ms",
             "mb1": f"{number / 1e6:.1f} MB", "int": f"{number:,.0f}", "x2": f"{number:.2f}x", "g2": f"{number:.2f}"}
    if how not in kinds:
        raise Stale(f"unknown format {how!r}")
    return kinds[how]


def walk(doc: Any, path: str, source: str) -> Any:
    for key in [k for k in path.split("/") if k]:
        if isinstance(doc, list) and "=" in key:  # "model=default,set=orl": the one row with those fields
            wanted = dict(pair.split("=", 1) for pair in key.split(","))
            found = [row for row in doc if isinstance(row, dict)
                     and all(str(row.get(k)) == v for k, v in wanted.items())]
            if len(found) != 1:
                raise Stale(f"{source} has {len(found)} rows for {key!r} in {path!r}, not one")
            doc = found[0]
            continue
        if not isinstance(doc, dict) or key not in doc:
            raise Stale(f"{source} has no {path!r}")
        doc = doc[key]
    return doc


def results(root: Path, spec: dict, cache: dict[str, dict]) -> dict:
    name = spec.get("file", "")
    if name not in cache:
        path = root / name
        if not name.startswith("benchmarks/results/") or not path.is_file():
            raise Stale(f"cites {name!r}, which is not a results file in benchmarks/results/")
        cache[name] = json.loads(path.read_text())
    return cache[name]


def table(root: Path, spec: dict, cache: dict[str, dict]) -> str:
    doc = results(root, spec, cache)
    rows = walk(doc, spec["rows"], spec["file"]) if spec.get("rows") else [doc]  # no rows: the file is one row
    if isinstance(rows, dict):
        rows = [{"key": k, **v} if isinstance(v, dict) else {"key": k, "value": v} for k, v in rows.items()]
    for key, wanted in spec.get("where", {}).items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        rows = sorted((r for r in rows if r.get(key) in allowed), key=lambda r: allowed.index(r.get(key)))
    if not rows:
        raise Stale(f"{spec['file']}: no rows for {spec.get('where')}")
    columns = spec["columns"]
    out = ["| " + " | ".join(c[0] for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [formatted(walk(row, c[1], spec["file"]) if c[1] else "", c[2] if len(c) > 2 else None)
                 for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    made = f"`{doc.get('command', '?')}`, {str(doc.get('date', '?'))[:10]}"
    return "\n".join(out) + f"\n\n<small>From `{spec['file']}` ({made}).</small>\n"


def render_page(text: str, root: Path, cache: dict[str, dict]) -> str:
    def figure(match: re.Match) -> str:
        spec = json.loads(match.group(1))
        return f"<!-- figure: {match.group(1)} -->\n{table(root, spec, cache)}<!-- /figure -->"

    def value(match: re.Match) -> str:
        spec = json.loads(match.group(1))
        shown = formatted(walk(results(root, spec, cache), spec["path"], spec["file"]), spec.get("format"))
        return f"<!-- value: {match.group(1)} -->{shown}<!-- /value -->"

    return VALUE.sub(value, FIGURE.sub(figure, text))


def cli_reference() -> str:
    """Every command's ``--help`` as an 80-column terminal shows it, generated from the Typer app."""
    from typer.main import get_command
    from typer.testing import CliRunner

    from edgeface.cli import app

    app.rich_markup_mode = None  # what ``edgeface`` prints below 110 columns
    top = get_command(app)
    runner = CliRunner()
    sections = ["# CLI reference\n", "Generated from the Typer app by `python docs/render.py` (a test fails when it "
                "differs from what `--help` prints): every command and flag, as an 80-column terminal shows them.\n"]

    def visit(command: Any, path: list[str]) -> None:
        done = runner.invoke(app, [*path, "--help"], prog_name="edgeface", terminal_width=CLI_WIDTH,
                             env={"COLUMNS": str(CLI_WIDTH)})
        if done.exit_code != 0:
            raise Stale(f"edgeface {' '.join(path)} --help failed: {done.output[-300:]}")
        title = " ".join(["edgeface", *path])
        sections.append(f"## `{title}`\n\n```text\n{done.output.rstrip()}\n```\n")
        if hasattr(command, "list_commands"):  # a group (typer's, which is not click's own class)
            context = type(command).context_class(command) if hasattr(command, "context_class") else None
            for name in command.list_commands(context):
                visit(command.get_command(context, name), [*path, name])

    visit(top, [])
    return "\n".join(sections)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming what is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout (its README, docs/ and results)")
    args = parser.parse_args()
    cache: dict[str, dict] = {}
    stale, broken = [], []
    pages = [p for pattern in PAGES for p in sorted(args.root.glob(pattern))]
    for page in pages:
        text = page.read_text()
        try:
            fresh = render_page(text, args.root, cache)
        except (Stale, KeyError, ValueError) as exc:
            broken.append(f"{page.relative_to(args.root)}: {exc}")
            continue
        if fresh != text:
            stale.append(f"{page.relative_to(args.root)}: a figure differs from its results file")
            if not args.check:
                page.write_text(fresh)
    reference = cli_reference()
    cli = args.root / CLI_PAGE
    if not cli.is_file() or cli.read_text() != reference:
        stale.append(f"{CLI_PAGE}: differs from --help")
        if not args.check:
            cli.write_text(reference)
    for line in stale:
        print(("out of date: " if args.check else "rendered: ") + line, file=sys.stderr)
    for line in broken:
        print(f"cannot render: {line}", file=sys.stderr)
    return 1 if broken or (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
