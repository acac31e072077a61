"""Every bad row of a data set, found in one pass: reported together (data.on_bad_sample=error) or listed (skip).

A user fixing a file wants all its defects at once, each with the line to open in an editor; "row 5" alone (an
index into the split, header not counted) sends them to the wrong line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hftl.errors import DataError

MAX_LISTED = 20  # rows spelled out in one error message; the rest are counted
SKIP_HINT = "set data.on_bad_sample=skip to leave such rows out (they are listed in RUN/skipped_samples.json)"


@dataclass
class LineLocator:
    """Maps (source split, row index) to the file and editor line of that record, for table files (CSV/TSV/JSONL)."""

    files: dict[str, list[Path]]
    encoding: str = "utf-8"
    _cache: dict[str, list[tuple[Path, int]]] = field(default_factory=dict)

    def __call__(self, split: str, row: int) -> tuple[Path, int] | None:
        from hftl.run.text_files import record_lines

        if split not in self._cache:
            located: list[tuple[Path, int]] = []
            for path in self.files.get(split, []):
                if path.suffix not in (".csv", ".tsv", ".jsonl", ".json") or not _is_line_per_record(path):
                    located = []
                    break
                located += [(path, line) for line in record_lines(path, self.encoding)]
            self._cache[split] = located
        located = self._cache[split]
        return located[row] if 0 <= row < len(located) else None


def _is_line_per_record(path: Path) -> bool:
    if path.suffix != ".json":
        return True
    with path.open("rb") as f:
        return f.read(4096).lstrip()[:1] == b"{"  # JSON Lines under a .json name; a JSON array has no row lines


@dataclass
class BadRows:
    """Collects bad rows; ``skipped`` receives them under skip, ``raise_if_any`` reports them under error."""

    on_bad_sample: str
    source: str
    locate: LineLocator | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    skip_hint: str = SKIP_HINT  # where the user finds skipped rows differs: a run, or `hftl evaluate`'s record
    errors: list[str] = field(default_factory=list)

    def add(self, split: str, row: int, column: str, reason: str, advice: str = "", shown: str | None = None) -> None:
        where = f"column '{column}' row {row} of split '{split}'"
        found = self.locate(split, row) if self.locate is not None else None
        if found is not None:
            where += f" (line {found[1]} of {found[0]})"
        if shown and shown not in reason:
            where += f" ({shown})"
        if self.on_bad_sample == "skip":
            entry: dict[str, Any] = {"split": split, "row": row, "column": column}
            if shown is not None:
                entry["input"] = shown
            if found is not None:
                entry.update(file=str(found[0]), line=found[1])
            self.skipped.append({**entry, "reason": reason})
            return
        self.errors.append(f"{where}: {reason}" + (f"; {advice}" if advice else ""))

    def raise_if_any(self) -> None:
        """One DataError naming every bad row (up to MAX_LISTED), if any were found under data.on_bad_sample=error."""
        if not self.errors:
            return
        if len(self.errors) == 1:
            raise DataError(f"{self.errors[0]}, or {self.skip_hint}")
        listed = "\n  ".join(self.errors[:MAX_LISTED])
        more = f"\n  ... and {len(self.errors) - MAX_LISTED} more" if len(self.errors) > MAX_LISTED else ""
        raise DataError(
            f"{len(self.errors)} bad rows in {self.source}; fix or remove them, or {self.skip_hint}:\n  {listed}{more}"
        )
