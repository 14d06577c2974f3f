"""A progress bar on the terminal for long CLI commands, drawn on standard error.

Only when standard error is a terminal: piped or redirected into a file or a CI log, a command
prints its result and nothing else, so that the output stays readable and diffable.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import TextIO

Update = Callable[[str, int, int | None], None]
"""Told ``(what is being done, steps done, steps expected or None when unknown)``."""


def _ignore(what: str, done: int, total: int | None) -> None:
    """No terminal to draw on."""


@contextlib.contextmanager
def terminal_progress(stream: TextIO | None = None) -> Iterator[Update]:
    """Yield an update function that draws a progress bar on ``stream`` (stderr) if it is a TTY."""
    stream = stream if stream is not None else sys.stderr
    if not stream.isatty():
        yield _ignore
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,  # the bar goes when the work is done; the command's report stays
    ) as bar:
        task = bar.add_task("starting", total=None)

        def update(what: str, done: int, total: int | None) -> None:
            # drawn at once: steps can be quicker than the bar's own refresh
            bar.update(task, description=what, completed=done, total=total, refresh=True)

        yield update
