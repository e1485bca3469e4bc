"""Progress of a long step on the console, labelled with what it counts.

On a terminal it is a tqdm bar, redrawn in place. Anywhere else (a pipe, a file: ``make run >
run.txt 2>&1``, a container's log) a bar would be one run-on line of carriage returns, so
it is plain lines instead, one each time another tenth is done or :data:`EVERY_SECONDS`
passed with some progress, then one when it ends, e.g.::

    encoding 3,085 replies of the training set: 40% (1,234/3,085 texts)
    encoding 3,085 replies of the training set: 100% (3,085/3,085 texts) in 12.3 s

Every bar of the command line goes through :func:`progress`, so none is unlabelled.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any
from typing import TextIO

# A plain line at least this often (seconds) while the count moves, so that a slow step in a
# log file still shows it is alive; and at every tenth done.
EVERY_SECONDS = 10.0
EVERY_SHARE = 0.1
# The unit whose counts are shown as sizes (1.5 MiB), not numbers.
BYTES = "bytes"


class Progress:
    """A labelled count of work done out of ``total``: :meth:`update` adds to it,
    :meth:`advance_to` sets it, :meth:`close` ends it (a ``with`` block closes it too).

    Args:
        label: what is counted and for what, e.g. "encoding 3,085 replies of the training
            set"; the line starts with it.
        total: the count when done (at least 1 is shown).
        unit: what one unit is ("texts"; "bytes" are shown in KiB, MiB...); empty for a
            share of a whole, shown as a percentage only.
        stream: where to write; standard error by default (where tqdm writes).
        terminal: a bar redrawn in place (True) or plain lines (False); by default whether
            ``stream`` is a terminal.
        every_seconds, every_share: how often a plain line is written (the defaults above).
        show: False writes nothing (a command's ``--quiet`` or a caller without a console).
    """

    def __init__(
        self,
        label: str,
        total: int,
        unit: str = "",
        stream: TextIO | None = None,
        terminal: bool | None = None,
        every_seconds: float = EVERY_SECONDS,
        every_share: float = EVERY_SHARE,
        show: bool = True,
    ) -> None:
        self.label = label
        self.total = max(int(total), 1)
        self.unit = unit
        self.done = 0
        self._stream = stream if stream is not None else sys.stderr
        self._terminal = _is_terminal(self._stream) if terminal is None else terminal
        self._every_seconds = every_seconds
        self._every_share = every_share
        self._started = self._last_time = time.monotonic()
        self._last_done = 0
        self._closed = not show
        self._bar: Any = None
        if show and self._terminal:
            from tqdm import tqdm

            scaled = unit == BYTES
            count = "{n_fmt}/{total_fmt}" + ("B" if scaled else f" {unit}") + " " if unit else ""
            self._bar = tqdm(
                total=self.total,
                desc=label,
                file=self._stream,
                unit_scale=scaled,
                unit_divisor=1024,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| " + count + "[{elapsed}{postfix}]",
            )

    def update(self, count: int = 1) -> None:
        """``count`` more units are done."""
        self.advance_to(self.done + count)

    def advance_to(self, done: int) -> None:
        """``done`` units are done in all (never less than before)."""
        done = min(max(int(done), self.done), self.total)
        step = done - self.done
        self.done = done
        if self._closed or step <= 0:
            return
        if self._bar is not None:
            self._bar.update(step)
            return
        now = time.monotonic()
        share = (done - self._last_done) / self.total
        if done < self.total and (
            share >= self._every_share or now - self._last_time >= self._every_seconds
        ):
            self._line()
            self._last_time, self._last_done = now, done

    def close(self, note: str = "") -> None:
        """End it: the bar stays on screen with ``note`` after it, or the last plain line is
        written with ``note`` (by default the seconds it took). Closing twice does nothing."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.close()
            return
        self._line(note or f"in {time.monotonic() - self._started:.1f} s")

    def _line(self, note: str = "") -> None:
        """One plain line: label, percentage, count and ``note``."""
        line = f"{self.label}: {100 * self.done / self.total:.0f}%"
        if self.unit == BYTES:
            line += f" ({_size(self.done)}/{_size(self.total)})"
        elif self.unit:
            line += f" ({self.done:,}/{self.total:,} {self.unit})"
        if note:
            line += f" {note}"
        self._stream.write(line + "\n")
        self._stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Interrupted: the last line says where it stopped, not that it finished.
        self.close("" if kind is None else "(stopped)")


def _is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal (False for a stream that cannot tell)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _size(count: int) -> str:
    """``count`` bytes in the largest binary unit under 1024 of it: "512 B", "1.5 MiB"."""
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.0f} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
