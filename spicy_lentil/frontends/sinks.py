"""Where a score job's rows go: a JSONL or a Parquet output, appended to as rows are scored, resumable.

Rows are appended and flushed as they are scored. Resumed, a sink reads the ids already written (a
trailing half-written line from a killed run is cut off) and reports them in `done`, so the job skips
them. Parquet output is written as complete part files (each a valid Parquet file) and joined at the
end, for the same guarantee; the joined file records which parts it holds, so a run killed after
joining but before removing the parts does not join them twice.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..errors import DamagedFileError

PARQUET_PART_ROWS = 1000
FOLDED_PARTS = b"spicy_lentil.parts"  # Parquet schema metadata: the part files the output already holds


# Characters that str.splitlines (and many JSONL readers) take for line breaks, though JSON does not
# escape them: escaped here, so every reader sees one row per line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl_line(row: dict) -> str:
    """One output row as a JSON line: UTF-8 text as is, except the characters that readers split lines on."""
    return json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def parts_path(output: Path) -> Path:
    """The folder of a Parquet job's part files, beside its output."""
    return output.with_name(output.name + ".parts")


class JsonlSink:
    """Appends JSON lines; on resume, repairs a torn last line and reports the ids already there."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.done: set[str] = set()
        if resume and path.is_file():
            _cut_torn_tail(path)
            self.done = _written_ids(path)
        self._file = open(path, "a" if resume else "w", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._file.write(jsonl_line(row))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _written_ids(path: Path) -> set[str]:
    """The ids of a JSONL output being resumed; a row that is not one this job writes raises `DamagedFileError`."""
    done = set()
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise DamagedFileError(
                    f"{path}:{number}: not a JSON row ({error}); cannot resume this output"
                ) from error
            if not isinstance(row, dict) or not isinstance(row.get("_id"), str):
                raise DamagedFileError(f"{path}:{number}: the row has no string '_id'; cannot resume this output")
            done.add(row["_id"])
    return done


def _read_parquet(path: Path, columns: list[str] | None = None):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns)
    except (OSError, pa.ArrowException) as error:
        raise DamagedFileError(f"{path}: not a readable Parquet file ({error}); cannot resume this output") from error
    if "_id" not in table.column_names:
        raise DamagedFileError(f"{path}: has no '_id' column; cannot resume this output")
    return table


def _folded_parts(path: Path) -> list[str]:
    """The part files a joined output records it holds."""
    import pyarrow.parquet as pq

    try:
        metadata = pq.read_schema(path).metadata or {}
    except OSError as error:
        raise DamagedFileError(f"{path}: not a readable Parquet file ({error}); cannot resume this output") from error
    return json.loads(metadata.get(FOLDED_PARTS, b"[]"))


class ParquetSink:
    """Writes Parquet part files of `PARQUET_PART_ROWS` rows beside the output, joined into it by `close`.

    Parts are named by creation time (one writer at a time), so every part name is new, and the
    joined output lists the names it holds: joining is idempotent.
    """

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.parts = parts_path(path)
        self.resume = resume and path.is_file()
        folded = set(_folded_parts(path)) if self.resume else set()
        for part in self.parts.glob("part-*.parquet") if self.parts.is_dir() else []:
            # Without resume; or joined already, by a run killed before it removed its parts.
            if not resume or part.name in folded:
                part.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)
        self.done = {i for part in self._part_files() for i in _read_parquet(part, ["_id"])["_id"].to_pylist()}
        if self.resume:
            self.done |= set(_read_parquet(path, ["_id"])["_id"].to_pylist())
        self._rows: list[dict] = []
        self._last_part = 0

    def _part_files(self) -> list[Path]:
        return sorted(self.parts.glob("part-*.parquet"))

    def write(self, row: dict) -> None:
        self._rows.append({**row, "slots": json.dumps(row["slots"], ensure_ascii=False)})
        if len(self._rows) >= PARQUET_PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        name = f"part-{max(time.time_ns(), self._last_part + 1):020d}"
        self._last_part = int(name[5:])
        tmp = self.parts / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(self._rows, schema=_parquet_schema()), tmp)
        os.replace(tmp, self.parts / f"{name}.parquet")  # a part exists whole or not at all
        self._rows = []

    def close(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._flush()
        parts = self._part_files()
        tables = ([_read_parquet(self.path)] if self.resume else []) + [_read_parquet(p) for p in parts]
        folded = (_folded_parts(self.path) if self.resume else []) + [p.name for p in parts]
        table = pa.concat_tables(tables, promote_options="default") if tables else _parquet_schema().empty_table()
        tmp = self.path.with_name(self.path.name + ".tmp")
        metadata = {**(table.schema.metadata or {}), FOLDED_PARTS: json.dumps(folded)}
        pq.write_table(table.replace_schema_metadata(metadata), tmp)
        os.replace(tmp, self.path)  # the commit: from here on the output holds the parts, and says so
        for part in parts:
            part.unlink()
        self.parts.rmdir()


def _parquet_schema():
    """The columns of `jobs.result_row`, its slots as JSON text (one string column, whatever a slot holds)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("_id", pa.string()),
            ("score", pa.float64()),
            ("active", pa.list_(pa.string())),
            ("truncated", pa.bool_()),
            ("slots", pa.string()),
        ]
    )


def _cut_torn_tail(path: Path) -> None:
    """Drops a last line without its newline: the row a killed run was writing."""
    with open(path, "rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        position = size - 1
        while position > 0:
            step = min(1 << 16, position)
            handle.seek(position - step)
            block = handle.read(step)
            newline = block.rfind(b"\n")
            if newline >= 0:
                handle.truncate(position - step + newline + 1)
                return
            position -= step
        handle.truncate(0)
