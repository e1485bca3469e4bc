"""Files on disk: checksums read in blocks, and fsync for writes that must survive a crash.

Model artifacts (models/artifact.py) and backups (core/backup.py) use both.
"""

from __future__ import annotations

import hashlib
import os
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
