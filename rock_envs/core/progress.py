"""Progress on long work: a rich bar on a terminal, one plain line in a notebook, nothing in a pipe.

    with progress("make_vec: building envs", total=4096, unit="envs") as bar:
        bar.update(built)            # the count done so far (or bar.advance(n))

Where output goes decides: stderr a terminal gives a transient rich bar (gone when done, so logs
stay clean); a Jupyter kernel gives one line when the work ends; anything else (a pipe, a file,
CI) gives nothing. ``ROCK_ENVS_PROGRESS=0`` silences it everywhere, ``=1`` forces the bar.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def _mode() -> str:
    forced = os.environ.get("ROCK_ENVS_PROGRESS", "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return "off"
    if forced in ("1", "true", "yes", "on"):
        return "bar"
    if "ipykernel" in sys.modules:
        try:
            shell = sys.modules["IPython"].get_ipython()
        except (KeyError, AttributeError):
            shell = None
        if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
            return "line"
    stream = sys.stderr
    return "bar" if stream is not None and hasattr(stream, "isatty") and stream.isatty() else "off"


class Progress:
    """One task's progress; see the module docstring. Safe to use when silent (every call is cheap)."""

    def __init__(self, description: str, total: float | None, unit: str = ""):
        self.description, self.total, self.unit = description, total, unit
        self.done = 0.0
        self.mode = _mode()
        self.started = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        if self.mode == "bar":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(unit),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(description, total=total)

    def update(self, done: float, description: str | None = None) -> None:
        self.done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done, description=description or self.description)

    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif self.mode == "line":
            total = f"/{self.total:g}" if self.total is not None else ""
            elapsed = time.perf_counter() - self.started
            print(f"{self.description}: {self.done:g}{total} {self.unit} in {elapsed:.1f} s".rstrip(), flush=True)
            self.mode = "off"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(description: str, total: float | None = None, unit: str = "") -> Progress:
    return Progress(description, total, unit)
