"""Resumable batch scoring: documents in, one result row per document out, each id exactly once.

Rows are appended and flushed as they are scored. `resume` reads the ids already written (a
trailing half-written line from a killed run is cut off) and skips them, so a job killed at any
moment and resumed writes every input id exactly once. Parquet output is written as complete
part files (each a valid Parquet file) and joined at the end, for the same guarantee.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm.auto import tqdm

from .engine import RelevanceField, SpicyLentil
from .io import Rejects

PARQUET_PART_ROWS = 1000


def result_row(field: RelevanceField) -> dict:
    """The output row of one scored document."""
    return {"_id": field.document_id, "score": field.score, "active": field.active, "truncated": field.truncated,
            "slots": [s.to_dict() for s in field.slots]}


class JsonlSink:
    """Appends JSON lines; on resume, repairs a torn last line and reports the ids already there."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.done: set[str] = set()
        if resume and path.is_file():
            _cut_torn_tail(path)
            with open(path, encoding="utf-8") as handle:
                self.done = {json.loads(line)["_id"] for line in handle if line.strip()}
        self._file = open(path, "a" if resume else "w", encoding="utf-8")

    def write(self, row: dict) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ParquetSink:
    """Writes Parquet part files of `PARQUET_PART_ROWS` rows beside the output, joined into it by `close`."""

    def __init__(self, path: Path, resume: bool) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.parts = path.with_name(path.name + ".parts")
        if not resume:
            for part in self.parts.glob("part-*.parquet") if self.parts.is_dir() else []:
                part.unlink()
        self.parts.mkdir(parents=True, exist_ok=True)
        self.done = {i for part in sorted(self.parts.glob("part-*.parquet")) for i in pq.read_table(part, columns=["_id"])["_id"].to_pylist()}
        if resume and path.is_file():
            self.done |= set(pq.read_table(path, columns=["_id"])["_id"].to_pylist())
        self._rows: list[dict] = []

    def write(self, row: dict) -> None:
        self._rows.append({**row, "slots": json.dumps(row["slots"], ensure_ascii=False)})
        if len(self._rows) >= PARQUET_PART_ROWS:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._rows:
            return
        number = len(list(self.parts.glob("part-*.parquet")))
        tmp = self.parts / f".part-{number:06d}.tmp"
        pq.write_table(pa.Table.from_pylist(self._rows), tmp)
        os.replace(tmp, self.parts / f"part-{number:06d}.parquet")  # a part exists whole or not at all
        self._rows = []

    def close(self) -> None:
        import pyarrow.parquet as pq

        self._flush()
        parts = sorted(self.parts.glob("part-*.parquet"))
        tables = ([pq.read_table(self.path)] if self.path.is_file() else []) + [pq.read_table(p) for p in parts]
        if tables:
            import pyarrow as pa

            tmp = self.path.with_name(self.path.name + ".tmp")
            pq.write_table(pa.concat_tables(tables, promote_options="default"), tmp)
            os.replace(tmp, self.path)
        for part in parts:
            part.unlink()
        self.parts.rmdir()


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


def score_job(lentil: SpicyLentil | None, query: str, documents: Iterable[dict], output: Path | None, rejects: Rejects,
              output_format: str = "jsonl", resume: bool = False, batch_size: int = 32, total: int | None = None,
              show_progress_bar: bool = True, scorer: Callable[[Iterator[dict]], Iterable[dict]] | None = None) -> dict:
    """Scores a stream of `{"_id", "text"}` documents into `output` (stdout when None); returns a summary.

    Args:
        resume: skip documents whose id the output already holds.
        total: number of input documents, when known, for the progress bar's ETA.
        scorer: maps the pending documents to their `result_row`s, in any order, instead of `lentil`
            (`spicy_lentil.distributed` scores them on a Ray cluster); this process still writes them.
    """
    import sys

    if output is None:
        if output_format != "jsonl" or resume:
            raise ValueError("--format parquet and --resume need --out")
        sink = None
        done: set[str] = set()
    else:
        sink = ParquetSink(output, resume) if output_format == "parquet" else JsonlSink(output, resume)
        done = sink.done
    skipped = 0

    def pending() -> Iterator[dict]:
        nonlocal skipped
        seen: set[str] = set()
        for document in documents:
            if document["_id"] in done or document["_id"] in seen:
                skipped += 1
                progress.update(1)
                continue
            seen.add(document["_id"])
            yield document

    written = 0
    progress = tqdm(total=total, desc="scoring", unit="doc", disable=not show_progress_bar, dynamic_ncols=True)
    try:
        if scorer is None:
            rows = (result_row(f) for f in lentil.iter_fields(query, pending(), batch_size=batch_size, cache_slots=False))
        else:
            rows = scorer(pending())
        for row in rows:
            if sink is None:
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                sink.write(row)
            written += 1
            progress.update(1)
    finally:
        progress.close()
        if sink is not None:
            sink.close()
    return {"scored": written, "skipped_already_done": skipped, "rejected": rejects.count}
