"""Resumable batch scoring: documents in, one result row per document out, each id exactly once.

Rows are appended and flushed as they are scored. `resume` reads the ids already written (a
trailing half-written line from a killed run is cut off) and skips them, so a job killed at any
moment and resumed writes every input id exactly once. Parquet output is written as complete
part files (each a valid Parquet file) and joined at the end, for the same guarantee; the joined
file records which parts it holds, so a run killed after joining but before removing the parts
does not join them twice.

`claimed_output` guards an output for one job: never an input, an existing output only with
`resume` or `overwrite`, one writer at a time (an `flock` on `OUT.lock`), and resumed only by the job
that wrote it (its query, k and model, recorded in `OUT.job.json`): rows do not carry the query.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from ..errors import DamagedFileError, OutputError
from ..io import Rejects
from ..results import RelevanceField
from .engine import SpicyLentil

PARQUET_PART_ROWS = 1000
FOLDED_PARTS = b"spicy_lentil.parts"  # Parquet schema metadata: the part files the output already holds


# Characters that str.splitlines (and many JSONL readers) take for line breaks, though JSON does not
# escape them: escaped here, so every reader sees one row per line.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl_line(row: dict) -> str:
    """One output row as a JSON line: UTF-8 text as is, except the characters that readers split lines on."""
    return json.dumps(row, ensure_ascii=False).translate(_LINE_BREAKS) + "\n"


def rejects_path(output: Path) -> Path:
    """Where a job writing `output` records its rejected rows."""
    return output.with_name(output.name + ".rejects.jsonl")


def job_path(output: Path) -> Path:
    """Where a job records what it scores (query, k, model) beside its output."""
    return output.with_name(output.name + ".job.json")


def parts_path(output: Path) -> Path:
    """The folder of a Parquet job's part files, beside its output."""
    return output.with_name(output.name + ".parts")


@contextmanager
def claimed_output(
    output: Path | None,
    inputs: Sequence[str],
    resume: bool = False,
    overwrite: bool = False,
    job: dict | None = None,
) -> Iterator[None]:
    """Holds `output` for one job, checked before anything is opened for writing.

    Args:
        job: what the job scores (JSON values: query, k, model); recorded beside the output, and an
            output being resumed must have been written by the same job. None records nothing.

    Raises:
        OutputError: the output (or its rejects file) is one of `inputs`; it exists and neither
            `resume` nor `overwrite` is set (or both are); another process is writing it; or, resumed,
            another job wrote it.
        DamagedFileError: the job record of an output being resumed is not readable.
    """
    if resume and overwrite:
        raise OutputError("--resume and --overwrite contradict each other: choose one")
    if output is None:
        yield
        return
    lock_path = output.with_name(output.name + ".lock")
    written = (output, rejects_path(output), lock_path, job_path(output))
    for source in inputs:
        if source != "-" and any(_same_file(source, path) for path in written):
            raise OutputError(f"--out {output} would overwrite the input {source}; choose another output")
    lock = open(lock_path, "a")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputError(
                f"{output} is being written by another process (it holds {lock_path}); "
                "wait for it to finish or choose another --out"
            ) from None
        if not (resume or overwrite) and (output.exists() or parts_path(output).exists()):
            raise OutputError(f"{output} exists already: pass --resume to continue it or --overwrite to replace it")
        if job is not None:
            _record_job(output, job, resume)
        yield
    finally:
        lock.close()  # releases the lock; the lock file stays, since removing it would race a waiting writer


def _record_job(output: Path, job: dict, resume: bool) -> None:
    """Writes `job` beside `output`; resuming an output that exists, first checks that `job` wrote it."""
    record = job_path(output)
    holds_rows = (output.is_file() and output.stat().st_size > 0) or parts_path(output).exists()
    if resume and holds_rows:
        try:
            written_by = json.loads(record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OutputError(
                f"{output} has no {record.name}, so which job wrote it is unknown; "
                "--overwrite to score it again from the start"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DamagedFileError(f"{record}: not a job record ({error}); cannot resume this output") from error
        if not isinstance(written_by, dict):
            raise DamagedFileError(f"{record}: not a job record (not a JSON object); cannot resume this output")
        changed = [
            f"{key} {written_by.get(key)!r}, now {value!r}"
            for key, value in job.items()
            if written_by.get(key) != value
        ]
        if changed:
            raise OutputError(
                f"{output} holds another job's rows ({'; '.join(changed)}): --resume continues only the job "
                "that wrote it; choose another --out, or --overwrite"
            )
        return
    tmp = record.with_name(record.name + ".tmp")
    tmp.write_text(json.dumps(job) + "\n", encoding="utf-8")
    os.replace(tmp, record)  # whole or not at all, written before the first row


def _same_file(a: str | Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return Path(a).resolve() == b.resolve()


def result_row(field: RelevanceField) -> dict:
    """The output row of one scored document."""
    return {
        "_id": field.document_id,
        "score": field.score,
        "active": field.active,
        "truncated": field.truncated,
        "slots": [s.to_dict() for s in field.slots],
    }


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


def _rejects_off_the_total(documents: Iterable[dict], rejects: Rejects, progress: tqdm) -> Iterator[dict]:
    """`documents`, taking each row rejected while reading them off the progress bar's total (counted by lines)."""
    counted = rejects.seen
    for document in itertools.chain(documents, [None]):
        if rejects.seen > counted and progress.total is not None:
            progress.total -= rejects.seen - counted
            progress.refresh()
        counted = rejects.seen
        if document is not None:
            yield document


def score_job(
    lentil: SpicyLentil | None,
    query: str,
    documents: Iterable[dict],
    output: Path | None,
    rejects: Rejects,
    output_format: str = "jsonl",
    resume: bool = False,
    batch_size: int = 32,
    total: int | None = None,
    show_progress_bar: bool = True,
    pathways_per_query: int | None = None,
    scorer: Callable[[Iterator[dict]], Iterable[dict]] | None = None,
) -> dict:
    """Scores a stream of `{"_id", "text"}` documents into `output` (stdout when None); returns a summary.

    Without `resume`, an existing output is replaced: callers that must not replace one hold it
    with `claimed_output` first, as the CLI does.

    Args:
        resume: skip documents whose id the output already holds.
        total: number of input documents, when known, for the progress bar's ETA.
        pathways_per_query: the gate's k for this job; None = the model's default.
        scorer: maps the pending documents to their `result_row`s, in any order, instead of `lentil`
            (`spicy_lentil.frontends.distributed` scores them on a Ray cluster); this process still writes them.
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
        for position, document in enumerate(_rejects_off_the_total(documents, rejects, progress), start=1):
            if document["_id"] in done:
                skipped += 1
                progress.update(1)
                continue
            if document["_id"] in seen:  # the CLI's reader rejects these first, with file and line
                rejects.add("<documents>", position, f"duplicate _id {document['_id']!r} (the first one is kept)")
                continue
            seen.add(document["_id"])
            yield document

    written = 0
    progress = tqdm(total=total, desc="scoring", unit="doc", disable=not show_progress_bar, dynamic_ncols=True)
    try:
        if scorer is None:
            rows = (
                result_row(f)
                for f in lentil.iter_fields(
                    query, pending(), batch_size=batch_size, cache_slots=False, pathways_per_query=pathways_per_query
                )
            )
        else:
            rows = scorer(pending())
        for row in rows:
            if sink is None:
                sys.stdout.write(jsonl_line(row))
            else:
                sink.write(row)
            written += 1
            progress.update(1)
    finally:
        progress.close()
        if sink is not None:
            sink.close()
    return {"scored": written, "skipped_already_done": skipped, "rejected": rejects.count}
