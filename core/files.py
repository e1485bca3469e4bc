"""Files on disk: checksums read in blocks, fsync for writes that must survive a crash, and
the one atomic write (a temporary file, then a rename) every file a reader may open while it
is written goes through.

Model artifacts (models/artifact.py) and backups (core/backup.py) use the first two; the
generation's files (worker/stages/), the backup manifest, the dashboard's secret key and the
fault markers (worker/faults.py) the third.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

BLOCK = 1 << 20


def sha256_file(path: Path, progress: Callable[[int], object] | None = None) -> str:
    """The hex sha256 of the file at ``path``, read in 1 MiB blocks.

    ``progress`` is called with the number of bytes of each block read (a tqdm bar's
    ``update``). Raises OSError when the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
            if progress is not None:
                progress(len(block))
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's data to disk (a directory: the names in it, so that a
    rename into it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` so that no reader ever sees half of it.

    The bytes go to a temporary file in the same folder (created mode 0600 by ``mkstemp``)
    and are fsynced, so that after a power cut the name never points at an empty file; the
    file then takes the name: ``os.replace`` (an existing file is replaced), or with
    ``replace=False`` ``os.link``, which gives the name only when nothing has it yet, so of
    several processes writing at once exactly one wins.

    Args:
        path: the file to write; its folder must exist.
        data: the whole content.
        replace: False keeps an existing file (see above).

    Returns:
        True when ``path`` now holds ``data``; False when ``replace`` is False and the file
        existed already (it is left as it was).

    Raises:
        OSError: the folder is missing or not writable, or the disk is full.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
