"""Reading documents from files: line-numbered rejects instead of tracebacks, one row at a time."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from .documents import ID_KEYS, document_id
from .errors import DamagedFileError, invalid_json, surrogate_at


def file_sha256(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Rejects:
    """Collects malformed input rows; with a path, also appends them there as JSONL (line number and reason)."""

    def __init__(self, path: Path | None = None, echo: bool = True, resume: bool = False) -> None:
        self.path = path
        self.echo = echo
        self.count = 0
        self.seen = 0  # rows rejected by this run, reported before (`skip`) or not
        self.skip: set[tuple[str, int]] = set()  # rows already reported by the run being resumed
        self._file = None
        if path is not None and path.is_file():
            if resume:
                self.skip = _reported_rows(path)
                self.count = len(self.skip)
            else:
                path.unlink()

    def add(self, source: str, line: int, reason: str) -> None:
        self.seen += 1
        if (source, line) in self.skip:
            return
        self.count += 1
        if self.echo:
            # Through tqdm, so a progress bar on stderr is moved below the message instead of sharing its line.
            tqdm.write(f"rejected {source}:{line}: {reason}", file=sys.stderr)
        if self.path is not None:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps({"source": source, "line": line, "reason": reason}) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _reported_rows(path: Path) -> set[tuple[str, int]]:
    """(source, line) of the rejects a killed run recorded; its torn last line, if any, is cut off."""
    content = path.read_bytes()
    complete = content[: content.rfind(b"\n") + 1]
    if complete != content:
        path.write_bytes(complete)
    reported = set()
    for number, line in enumerate(complete.splitlines(), start=1):
        try:
            row = json.loads(line)
            reported.add((row["source"], row["line"]))
        except (ValueError, KeyError, TypeError) as error:
            raise DamagedFileError(f"{path}:{number}: not a rejects row ({error}); cannot resume") from error
    return reported


def iter_jsonl_documents(
    handle,
    source: str,
    rejects: Rejects,
    seen: dict[str, str] | None = None,
    default_ids: bool = False,
    allow_empty: bool = True,
) -> Iterator[dict]:
    """Yields `{"_id", "title", "text", "sentences"?}` from JSONL lines; bad rows go to `rejects`.

    `handle` yields bytes (or str) lines. Each line is decoded on its own, so one bad byte costs only its
    row. A row's id is its "_id" or "id" (`documents.document_id`, the rule of every front end). Ids are
    compared as text: `5` and `"5"` are the same id, and a row repeating an id seen earlier (in `seen`,
    shared across the files of one job) is rejected, naming the first row.

    Args:
        default_ids: a row without an id gets `source:line` (the app's uploads) instead of being rejected.
        allow_empty: accept a row whose text is blank (it scores 0 with no slots); False rejects it.
    """
    seen = {} if seen is None else seen
    for number, line in enumerate(handle, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as error:
                rejects.add(source, number, f"not UTF-8 text (byte {error.start} of the line cannot be decoded)")
                continue
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            rejects.add(source, number, invalid_json(error.msg, error.pos))
            continue
        except RecursionError:
            rejects.add(source, number, "invalid JSON: nested too deeply")
            continue
        if default_ids and isinstance(row, dict) and all(row.get(key) is None for key in ID_KEYS):
            row["_id"] = f"{source}:{number}"
        reason = _row_problem(row, allow_empty)
        if reason is None:
            doc_id = document_id(row)
            if doc_id in seen:
                reason = _duplicate(doc_id, seen[doc_id])
            else:
                seen[doc_id] = f"{source}:{number}"
        if reason is not None:
            rejects.add(source, number, reason)
            continue
        document = {"_id": doc_id, "title": row["title"] if isinstance(row.get("title"), str) else None}
        if "sentences" in row:
            document["sentences"] = [s.strip() for s in row["sentences"]]
            document["text"] = " ".join(document["sentences"])  # what the slots' spans refer to
        else:
            document["text"] = row["text"]
        yield document


def _duplicate(doc_id: str, first: str) -> str:
    return f"duplicate _id {doc_id!r}: {first} has it already (the first row with an id is kept)"


def _row_problem(row, allow_empty: bool = True) -> str | None:
    """Why a parsed JSONL row cannot be a document, or None."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    sentences = row.get("sentences")
    if sentences is not None:
        if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
            return "'sentences' must be a list of strings"
        blank = next((i for i, s in enumerate(sentences) if not s.strip()), None)
        if blank is not None:
            return f"'sentences[{blank}]' is empty"
    elif not isinstance(row.get("text"), str):
        return "missing string field 'text' (or a list of strings 'sentences')"
    elif not allow_empty and not row["text"].strip():
        return "'text' is empty"
    try:
        if document_id(row) is None:
            return "missing field '_id' (or 'id')"
    except (TypeError, ValueError) as error:
        return str(error)
    strings = {}
    if isinstance(row.get("text"), str):
        strings["text"] = row["text"]
    if isinstance(row.get("title"), str):
        strings["title"] = row["title"]
    if sentences is not None:
        strings.update((f"sentences[{i}]", s) for i, s in enumerate(sentences))
    for name, text in strings.items():
        at = surrogate_at(text)
        if at is not None:
            return f"'{name}' holds a lone surrogate at character {at} (not valid Unicode text)"
    return None


JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")  # one JSON row per line
TEXT_SUFFIXES = (".txt", ".md")  # the whole file is one document


def holds_rows(path: str) -> bool:
    """Whether the file is read as JSONL rows (by its extension, in any case); stdin ("-") always is."""
    return path == "-" or Path(path).suffix.lower() in JSONL_SUFFIXES


def read_documents(paths: list[str], rejects: Rejects) -> Iterator[dict]:
    """Documents from .txt/.md files (one document each), JSONL files (.jsonl, .ndjson, .json) or stdin ("-"),
    streamed; ids unique across all. A file of any other extension is rejected, not guessed at."""
    seen: dict[str, str] = {}
    files: dict[str, str] = {}  # each text file read, by where it really is: `notes.txt` and `./notes.txt` are one
    for path in paths:
        if path == "-":
            yield from iter_jsonl_documents(getattr(sys.stdin, "buffer", sys.stdin), "<stdin>", rejects, seen)
        elif holds_rows(path):
            try:
                handle = open(path, "rb")
            except OSError as error:
                rejects.add(path, 0, f"cannot open file: {error}")
                continue
            with handle:
                yield from iter_jsonl_documents(handle, path, rejects, seen)
        elif Path(path).suffix.lower() not in TEXT_SUFFIXES:
            rejects.add(
                path,
                0,
                f"unknown file type {Path(path).suffix or '(no extension)'!r}: give .txt or .md files (one document "
                "each) or .jsonl/.ndjson files (one JSON row per line)",
            )
        else:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                rejects.add(path, 0, f"cannot read file: {error}")
                continue
            if surrogate_at(path) is not None:  # a file name that is not valid UTF-8 cannot be an output id
                rejects.add(path, 0, "the file name is not valid UTF-8; rename the file")
                continue
            if path in seen:
                rejects.add(path, 0, _duplicate(path, seen[path]))
                continue
            real = os.path.realpath(path)
            if real in files:
                rejects.add(path, 0, f"the same file as {files[real]}, which is scored already")
                continue
            files[real] = path
            seen[path] = f"{path}:0"
            yield {"_id": path, "title": None, "text": text}
