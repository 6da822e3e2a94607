"""The Typer apps every command module registers on."""

from __future__ import annotations

from typing import Annotated

import typer

from edgeface.version import __version__

app = typer.Typer(help="Make face-recognition models small and fast, prove their accuracy, run them on the edge.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


data_app = typer.Typer(help="Prepare face datasets: detect, align, write 112x112 crops + a manifest.",
                       no_args_is_help=True)


app.add_typer(data_app, name="data", rich_help_panel="1. data & training")


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeface {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                               help="show the version and exit")] = False) -> None:
    """edgeface: compress, export, evaluate, benchmark and deploy face-recognition models."""
