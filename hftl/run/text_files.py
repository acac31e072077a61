"""Facts about a CSV / TSV / JSON Lines file that its loader does not tell: its encoding, and each record's line.

datasets reports a file in the wrong encoding as "An error occurred while generating the dataset" (the
UnicodeDecodeError is only in an earlier log line), and numbers rows from 0 without the header: a user needs the
byte and line where decoding failed, and the editor line of each bad record.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

from hftl.errors import DataError

_CHUNK = 1 << 20


def check_encoding(path: Path, encoding: str, setting: str = "data.encoding=") -> None:
    """Decode the whole file, in chunks; a byte that does not decode is an error naming its offset and line.

    ``setting`` is how the user names the encoding where they are (a config key, or a command-line option).

    Raises:
        DataError: an unknown encoding name, or a byte sequence invalid in it.
    """
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError as err:
        raise DataError(f"{setting.rstrip('= ')}: unknown encoding {encoding!r} (e.g. utf-8, latin-1, cp1252, utf-16)") from err
    offset, lines = 0, 1
    with Path(path).open("rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            pending = decoder.getstate()[0]  # bytes of a character cut by the previous chunk's end
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as err:
                data = pending + chunk
                start = offset - len(pending) + err.start
                line = lines + data[len(pending) : max(len(pending), err.start)].count(b"\n")
                bad = data[err.start : err.end].hex() or "end of file"
                raise DataError(
                    f"{path}: not valid {encoding} text: byte 0x{bad} at byte offset {start} (line {line}) "
                    f"cannot be decoded ({err.reason}). Name the file's encoding "
                    f"(e.g. {setting}latin-1 or {setting}cp1252), or re-save the file as UTF-8"
                ) from err
            if not chunk:
                return
            lines += chunk.count(b"\n")
            offset += len(chunk)


def record_lines(path: Path, encoding: str = "utf-8") -> list[int]:
    """The editor line (1-based) where each data record starts: CSV/TSV after the header, JSON Lines per object.

    Blank lines are skipped, as the loaders skip them; a quoted CSV field may span lines.
    """
    path = Path(path)
    text = path.read_text(encoding=encoding, errors="replace")
    if path.suffix in (".csv", ".tsv"):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if path.suffix == ".tsv" else ",")
        starts, next_start, header = [], 1, True
        for record in reader:
            if record and not (len(record) == 1 and not record[0].strip()):
                if header:
                    header = False
                else:
                    starts.append(next_start)
            next_start = reader.line_num + 1
        return starts
    return [number for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
