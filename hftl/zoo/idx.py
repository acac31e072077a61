"""Reader for the IDX array files of (Fashion-)MNIST, plain or gzipped."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from hftl.zoo import ZooError

# IDX type codes -> numpy dtypes; multi-byte values are big-endian.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of one IDX file into an array of its shape.

    Layout: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per
    dimension, then the values in C order.

    Raises:
        ZooError: Bad magic, unknown type code or a size that does not match the header.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ZooError(f"{name}: not an IDX file (header {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4)) if ndim else ()
    dtype = np.dtype(_DTYPES[data[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ZooError(f"{name}: {len(data)} bytes, but the header {dims} says {expected}")
    # Native byte order so downstream code (PIL, torch) does not see big-endian arrays.
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file; a gzipped one (``.gz`` or gzip magic) is decompressed first."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return parse_idx(raw, Path(path).name)
