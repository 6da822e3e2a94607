"""The documentation cannot go stale: every figure in the README and docs/ is what its results JSON renders to (and a
changed JSON value fails), the CLI reference is what ``--help`` prints, the site builds with ``mkdocs build
--strict``, the README stays short, and the compress-your-own-model walk-through runs, command for command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, LFW, ROOT, needs_shared, small_pairs

RENDER = ROOT / "docs" / "render.py"


def render(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RENDER), *args], capture_output=True, text=True, timeout=300)


def test_every_figure_and_the_cli_reference_are_up_to_date() -> None:
    done = render("--check")
    assert done.returncode == 0, f"run 'python docs/render.py' and commit the result:\n{done.stderr}"
    figures = sum(text.count("<!-- figure: ") for text in
                  [(ROOT / "README.md").read_text(), *(p.read_text() for p in (ROOT / "docs").glob("*.md"))])
    assert figures >= 10


def copy_of_the_docs(tmp: Path) -> Path:
    """README, docs/ and the results files in a scratch checkout, to edit without touching the real one."""
    shutil.copy(ROOT / "README.md", tmp / "README.md")
    shutil.copytree(ROOT / "docs", tmp / "docs")
    shutil.copytree(ROOT / "benchmarks" / "results", tmp / "benchmarks" / "results",
                    ignore=shutil.ignore_patterns("*.png"))
    return tmp


def test_a_changed_result_or_a_missing_file_fails_the_check(tmp_path: Path) -> None:
    root = copy_of_the_docs(tmp_path)
    assert render("--check", "--root", str(root)).returncode == 0
    # one value the README's model table shows, edited as a re-measurement would
    shipped = root / "benchmarks" / "results" / "shipped_models.json"
    doc = json.loads(shipped.read_text())
    doc["models"][0]["lfw_accuracy"] = 0.5
    shipped.write_text(json.dumps(doc))
    done = render("--check", "--root", str(root))
    assert done.returncode == 1 and "README.md" in done.stderr and "differs" in done.stderr, done.stderr
    assert "50.00 %" not in (root / "README.md").read_text()  # --check changes nothing
    assert render("--root", str(root)).returncode == 0  # rendering writes the new value ...
    assert "| default | 6.2 MB | 50.00 % |" in (root / "README.md").read_text()
    assert render("--check", "--root", str(root)).returncode == 0  # ... and the check passes again
    # a value in prose picked from a list of rows by its fields (rows/model=default,condition=shadow/...)
    gates = root / "benchmarks" / "results" / "quality_gates.json"
    doc = json.loads(gates.read_text())
    next(r for r in doc["rows"] if r["model"] == "default" and r["condition"] == "shadow")["turned_away"] = 0.999
    gates.write_text(json.dumps(doc))
    done = render("--check", "--root", str(root))
    assert done.returncode == 1 and "model-card.md" in done.stderr, done.stderr
    assert render("--root", str(root)).returncode == 0
    assert "99.9 %<!-- /value --> of faces (port" in (root / "docs" / "model-card.md").read_text()
    # a figure citing a results file that does not exist
    page = root / "docs" / "results.md"
    page.write_text(page.read_text().replace("peers_lfw.json", "peers_lfw_gone.json", 1))
    done = render("--check", "--root", str(root))
    assert done.returncode == 1 and "peers_lfw_gone.json" in done.stderr, done.stderr


def test_the_cli_reference_shows_every_command_and_flag() -> None:
    from typer.main import get_command

    from edgeface.cli import app

    reference = (ROOT / "docs" / "cli.md").read_text()
    top = get_command(app)
    for name in top.list_commands(None):
        assert f"## `edgeface {name}`" in reference
    recognize = reference.split("## `edgeface recognize`")[1].split("\n## ")[0]
    for flag in ("--source", "--gallery", "--events", "--mqtt-password-file", "--unknown-events", "--ha-discovery"):
        assert re.search(rf"{re.escape(flag)}\b", recognize), flag


def test_the_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    done = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    for page in ("index.html", "cli/index.html", "model-card/index.html", "integrations/index.html",
                 "compress-your-own/index.html"):
        assert (tmp_path / "site" / page).stat().st_size > 1000, page


def test_the_readme_is_short_and_says_how_to_test() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 200
    assert "make test-fast" in readme and "make setup" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test\n" in ci


def walkthrough(page: Path) -> list[str]:
    """The commands of every ``<!-- walkthrough -->`` bash block of a page, in order."""
    blocks = re.findall(r"<!-- walkthrough -->\n```bash\n(.*?)```", page.read_text(), re.S)
    return [line for block in blocks for line in block.strip().splitlines() if line.strip()]


@needs_shared
@pytest.mark.slow
def test_the_compress_your_own_model_walkthrough_runs(tmp_path: Path) -> None:
    """docs/compress-your-own.md, command for command, on six ORL people and a tenth of pairs.txt (1,000 pairs of
    different people: the fewest --save-threshold takes)."""
    commands = walkthrough(ROOT / "docs" / "compress-your-own.md")
    assert [c.split()[1] for c in commands] == ["data", "train", "prune", "export", "eval", "bench", "info"]
    photos = tmp_path / "photos"
    for k in range(1, 7):
        shutil.copytree(DATA / "orl" / f"s{k}", photos / f"s{k}")
    pairs = small_pairs(tmp_path / "pairs.txt", folds=10, per=100)
    env = {**os.environ, "PHOTOS": str(photos), "LFW": str(LFW), "PAIRS": str(pairs),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    for command in commands:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
    assert (tmp_path / "tiny-int8.tflite").stat().st_size > 1000
    info = subprocess.run(["bash", "-c", "edgeface info tiny-int8.tflite --json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    manifest = json.loads(info.stdout)
    text = json.dumps(manifest)
    assert "int8" in text and "threshold" in text and "prune" in text, text[:2000]
