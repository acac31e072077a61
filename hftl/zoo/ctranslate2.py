"""Reader for CTranslate2 ``model.bin`` files (binary format version 6), without CTranslate2 itself.

Layout, all little endian: int32 version; string spec name; int32 spec revision; uint32 variable
count; per variable: name, uint8 rank, rank x uint32 dims, uint8 dtype, uint32 byte count, raw
bytes; then uint32 alias count and (alias, target) name pairs. A string is a uint16 length that
counts a trailing NUL, then the bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hftl.zoo import ZooError

SUPPORTED_VERSION = 6
# CTranslate2's DataType enum; bfloat16 (5) has no numpy type and is widened to float32 on read.
DTYPES = {0: np.dtype("<f4"), 1: np.dtype("i1"), 2: np.dtype("<i2"), 3: np.dtype("<i4"), 4: np.dtype("<f2")}
BFLOAT16 = 5


@dataclass
class CT2Model:
    """The contents of a ``model.bin``: spec name, revision, variables and aliases."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        """Return a variable by name, following an alias (CTranslate2 stores tied weights once)."""
        return self.variables[self.aliases.get(name, name)]

    def __contains__(self, name: str) -> bool:
        return name in self.variables or name in self.aliases


class _Cursor:
    """Sequential reads over a buffer that fail with ZooError instead of struct/numpy errors."""

    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = memoryview(data), 0, name

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise ZooError(f"{self.name}: truncated at byte {self.pos} (wanted {n} more of {len(self.data)})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        raw = bytes(self.take(self.unpack("H")))
        if not raw or raw[-1] != 0:
            raise ZooError(f"{self.name}: malformed string before byte {self.pos}")
        return raw[:-1].decode("utf-8")


def _array(raw: memoryview, dtype_id: int, dims: tuple[int, ...], name: str) -> np.ndarray:
    if dtype_id not in DTYPES and dtype_id != BFLOAT16:
        raise ZooError(f"variable {name!r}: unknown CTranslate2 dtype {dtype_id}")
    dtype = np.dtype("<u2") if dtype_id == BFLOAT16 else DTYPES[dtype_id]
    if len(raw) != int(np.prod(dims, dtype=np.int64)) * dtype.itemsize:
        raise ZooError(f"variable {name!r}: {len(raw)} bytes do not fit {dims} of dtype {dtype_id}")
    # Copy: the arrays must outlive (and not pin) the file's buffer.
    array = np.frombuffer(raw, dtype).reshape(dims).copy()
    if dtype_id == BFLOAT16:
        # bfloat16 is the top half of a float32.
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def parse_ct2(data: bytes, name: str = "model.bin") -> CT2Model:
    """Parse the bytes of a CTranslate2 ``model.bin``.

    Raises:
        ZooError: Unsupported version, truncated or malformed data, trailing bytes, or an alias
            that points nowhere.
    """
    cur = _Cursor(data, name)
    version = cur.unpack("i")
    if version != SUPPORTED_VERSION:
        raise ZooError(f"{name}: CTranslate2 binary version {version}, only {SUPPORTED_VERSION} is supported")
    spec = cur.string()
    revision = cur.unpack("i")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cur.unpack("I")):
        var = cur.string()
        dims = tuple(cur.unpack("I") for _ in range(cur.unpack("B")))
        dtype_id = cur.unpack("B")
        variables[var] = _array(cur.take(cur.unpack("I")), dtype_id, dims, var)
    aliases: dict[str, str] = {}
    if cur.pos < len(cur.data):  # the alias table is optional
        for _ in range(cur.unpack("I")):
            alias, target = cur.string(), cur.string()
            if target not in variables:
                raise ZooError(f"{name}: alias {alias!r} points to missing variable {target!r}")
            aliases[alias] = target
    if cur.pos != len(cur.data):
        raise ZooError(f"{name}: {len(cur.data) - cur.pos} unexpected bytes after the alias table")
    return CT2Model(spec, revision, variables, aliases)


def read_ct2(path: Path) -> CT2Model:
    """Read a CTranslate2 ``model.bin`` from disk (see :func:`parse_ct2`)."""
    return parse_ct2(Path(path).read_bytes(), Path(path).name)
