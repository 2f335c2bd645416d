"""The `medview` command's terminal output: lazy rich consoles (a plain line is written without importing rich) and
the commands' progress bar (none, and rich's progress module not imported, with --quiet). Start-up is part of every
command's time, so rich is imported only when a command shows more than a plain line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


class LazyConsole:
    """A rich Console made on first use. A plain line (`print(text, markup=False)`) is written as it is, without
    importing rich; anything else goes through the Console."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self.stderr, highlight=False, soft_wrap=True)
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        if self._console is None and options == {"markup": False} and len(objects) == 1 \
                and isinstance(objects[0], str):
            stream = sys.stderr if self.stderr else sys.stdout
            stream.write(objects[0] + "\n")
            stream.flush()
            return
        self.real.print(*objects, **options)




err = LazyConsole(stderr=True)  # messages
out = LazyConsole()  # summaries


class _NoBar:
    """The progress bar of a --quiet command: nothing shown, and rich's progress module not imported."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> Any:
        return 0

    def advance(self, *args: Any, **kwargs: Any) -> None:
        return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def progress_bar(quiet: bool) -> Progress:
    """The commands' progress bar on stderr (none with --quiet)."""
    if quiet:
        return cast("Progress", _NoBar())
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err.real, transient=False, disable=quiet)
