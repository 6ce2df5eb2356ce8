"""Resumable batch scoring: documents in, one result row per document out, each id exactly once.

Rows go to a sink (`sinks`), which writes them as they are scored and, resumed, reports the ids already
written, so a job killed at any moment and resumed writes every input id exactly once.

`claimed_output` guards an output for one job: never an input, an existing output only with
`resume` or `overwrite`, one writer at a time (an `flock` on `OUT.lock`), and resumed only by the job
that wrote it (its query, k and model, recorded in `OUT.job.json`): rows do not carry the query.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from tqdm.auto import tqdm

from ..errors import DamagedFileError, OutputError
from ..io import Rejects
from ..results import RelevanceField
from .engine import SpicyLentil
from .sinks import JsonlSink, ParquetSink, jsonl_line, parts_path


def rejects_path(output: Path) -> Path:
    """Where a job writing `output` records its rejected rows."""
    return output.with_name(output.name + ".rejects.jsonl")


def job_path(output: Path) -> Path:
    """Where a job records what it scores (query, k, model) beside its output."""
    return output.with_name(output.name + ".job.json")


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
