"""The ``edgeface`` command: parse options, call one library function, print a table or ``--json``.

No logic lives here. Each panel's commands live in their own module; training-half modules are imported
inside their commands so the device half of the CLI never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import sys

import typer

from edgeface.cli.base import app
from edgeface.errors import EdgefaceError

# importing a module registers its commands; in this order `edgeface --help` lists them, panel by panel
COMMAND_MODULES = ("train_commands", "compress_commands", "measure_commands", "compare_commands", "device_commands",
                   "gallery_commands")
for _module in COMMAND_MODULES:
    importlib.import_module(f"edgeface.cli.{_module}")

__all__ = ["app", "main"]
# rich's option panels need this many columns to show every flag name whole; a narrower terminal (80 columns, a
# Raspberry Pi's console) gets click's plain help, which wraps instead of cutting names short
WIDE_HELP = 110


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback.

    Anything unexpected is also one line (exit 3) naming the exception; EDGEFACE_DEBUG=1 shows the traceback.
    """
    try:
        if shutil.get_terminal_size((WIDE_HELP, 24)).columns < WIDE_HELP:
            app.rich_markup_mode = None  # click's plain help: every flag name whole at 80 columns
        code = app(standalone_mode=False)  # click's own errors come back here, to become one line too
        if isinstance(code, int) and code:
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("edgeface: interrupted", file=sys.stderr)
        sys.exit(130)
    except EdgefaceError as exc:
        fail(str(exc), 2)
    except KeyboardInterrupt:
        print("edgeface: interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (``edgeface ... | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except MemoryError:
        fail("out of memory (is the input far larger than it should be?)", 2)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", 2)
    except Exception as exc:
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # a usage error from click (which typer carries inside): bad option, missing argument, no such command
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx else "edgeface"
            if not exc.format_message():  # no command given: the help was printed, nothing went wrong
                sys.exit(0)
            fail(f"{exc.format_message()} (see '{command} --help')", 2)
        if os.environ.get("EDGEFACE_DEBUG"):
            raise
        fail(f"internal error {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''} "
             "(EDGEFACE_DEBUG=1 shows the traceback; please report it)", 3)


def fail(message: str, code: int) -> None:
    with contextlib.suppress(OSError):
        print(f"edgeface: error: {message}", file=sys.stderr)
    leave(code)


def leave(code: int) -> None:
    """Exit with ``code``; at once (no interpreter shutdown) while a camera or stream opener is stuck inside
    OpenCV, whose exit-time destructors would abort the process under it."""
    capture = sys.modules.get("edgeface.recognize.capture")
    if capture is not None and capture.stuck_openers():
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
