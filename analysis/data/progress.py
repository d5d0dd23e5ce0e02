"""Progress within long steps: a counter that rewrites one terminal line, silent elsewhere.

The command line announces each step on its own line (``[ 12.4 s] driver importance …``).
Inside a step that loops (bootstrap draws, jackknife groups), ``counting`` adds a counter
that rewrites one line of standard error, ``  bootstrap draws: 600/2000 (30%)``, and erases it
when the loop ends. It writes only after ``show_on_terminal`` has found a terminal and no
``CI`` variable: a log, a pipe, a notebook and a CI run get no control characters, and code
that imports the library (a researcher's own script) stays quiet unless it asks.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

#: Seconds between two redraws: often enough to look alive, rarely enough to cost nothing.
REDRAW_SECONDS = 0.2

_stream: TextIO | None = None


def show_on_terminal(stream: TextIO | None = None) -> bool:
    """Let ``counting`` draw on ``stream`` (standard error) if it is a terminal outside CI.

    Parameters
    ----------
    stream : text stream, optional
        Where counters are drawn; standard error when omitted.

    Returns
    -------
    bool
        Whether counters will be drawn.
    """
    global _stream
    stream = stream if stream is not None else sys.stderr
    interactive = bool(getattr(stream, "isatty", lambda: False)()) and not os.environ.get("CI")
    _stream = stream if interactive else None
    return interactive


def stop_showing() -> None:
    """Draw no more counters (as before ``show_on_terminal``)."""
    global _stream
    _stream = None


@contextmanager
def counting(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A counter of ``total`` units of work: ``with counting("bootstrap draws", B) as done:``.

    Parameters
    ----------
    label : str
        What is counted, as the line shows it.
    total : int
        How many units of work the loop does.

    Yields
    ------
    callable
        ``done(n=1)``: ``n`` more units are finished. Costs a comparison when nothing is drawn.
    """
    stream = _stream
    finished = 0
    last = 0.0

    def done(n: int = 1) -> None:
        nonlocal finished, last
        finished += n
        if stream is None:
            return
        now = time.monotonic()
        if now - last >= REDRAW_SECONDS or finished >= total:
            last = now
            share = 100 * finished / total if total else 100
            stream.write(f"\r  {label}: {finished:,}/{total:,} ({share:.0f}%)")
            stream.flush()

    try:
        yield done
    finally:
        if stream is not None:
            stream.write("\r\x1b[2K")  # erase the counter's line; the next step prints its own
            stream.flush()
