"""What a WAV file's header declares, to catch a file cut short: libsndfile reads what is there, silently shorter."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO


def declared_wav_frames(target: str | Path | BinaryIO) -> int | None:
    """Frames the ``data`` chunk of a RIFF/WAVE file declares; None for other formats or an unusable header.

    The header is read, not trusted: a caller compares it with the frames actually decoded.
    """
    if isinstance(target, (str, Path)):
        with open(target, "rb") as f:
            return _declared(f)
    position = target.tell()
    try:
        target.seek(0)
        return _declared(target)
    finally:
        target.seek(position)


def _declared(f: BinaryIO) -> int | None:
    riff = f.read(12)
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        return None
    block_align = None
    while True:
        head = f.read(8)
        if len(head) < 8:
            return None
        chunk, size = head[:4], struct.unpack("<I", head[4:])[0]
        if chunk == b"fmt ":
            fmt = f.read(size + (size & 1))
            if len(fmt) < 14:
                return None
            block_align = struct.unpack("<H", fmt[12:14])[0]
            continue
        if chunk == b"data":
            # 0 and 0xFFFFFFFF mark a stream written without knowing its length: nothing declared
            if not block_align or size in (0, 0xFFFFFFFF):
                return None
            return size // block_align
        f.seek(size + (size & 1), io.SEEK_CUR)
