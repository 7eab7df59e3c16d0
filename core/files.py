"""Atomic file and folder writes and checksums: ``from biomedgpt.core.files import atomic_write_text, atomic_dir``.

Why one module: caches, indexes, checkpoints, reports and converted weights must never be seen half
written (a killed process leaves the old version or the new one, nothing in between), and shipped
weights must never load corrupted (``SHA256SUMS`` next to them, checked at load). ``core/`` is the
ground floor of the import graph, so every room uses these.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from biomedgpt.core.errors import CheckpointError


@contextlib.contextmanager
def atomic_open(path: str | Path) -> Iterator[Any]:
    """A binary handle on a temporary file in ``path``'s folder; on a clean exit it is fsynced and renamed over
    ``path``, on an error it is removed (``path`` keeps its old content). For writers that stream (``np.savez``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; shipped and cached files are meant to be readable
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``."""
    with atomic_open(path) as handle:
        handle.write(payload)


def atomic_write_text(path: str | Path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    import torch  # deferred: torch costs seconds to import; only checkpoints need it

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(folder: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; on success it replaces ``folder`` by renames.

    On an exception the temporary folder is removed and ``folder`` is left as it was.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        yield tmp
        old = None
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SUMS_FILE = "SHA256SUMS"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256sums_text(folder: str | Path, names: list[str]) -> str:
    """``sha256sum``-format lines (``<hex>  <name>``) for ``names`` in ``folder``."""
    return "".join(f"{sha256_file(Path(folder) / name)}  {name}\n" for name in sorted(names))


def read_sha256sums(path: str | Path) -> dict[str, str]:
    """``{name: sha256}`` from a ``sha256sum``-format file (``<hex>  <name>`` or ``<hex> *<name>``)."""
    sums: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0].lower()):
            raise CheckpointError(f"{path}:{number} is not a sha256sum line (<64 hex digits>  <file name>)")
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def verify_sha256sums(folder: str | Path) -> dict[str, str]:
    """Check every file listed in ``folder/SHA256SUMS``; a missing or different file is a ``CheckpointError``."""
    folder = Path(folder)
    sums = read_sha256sums(folder / SUMS_FILE)
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is listed in {folder / SUMS_FILE} but missing; reinstall or re-export "
                                  f"the weights")
        found = sha256_file(path)
        if found != expected:
            raise CheckpointError(f"{path} does not match its checksum in {folder / SUMS_FILE} (expected "
                                  f"{expected}, found {found}): the file is corrupt or was changed; reinstall "
                                  f"the package or re-export the weights")
    return sums
