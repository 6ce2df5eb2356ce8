"""Reading documents from files: line-numbered rejects instead of tracebacks, one row at a time."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator


class Rejects:
    """Collects malformed input rows; with a path, also appends them there as JSONL (line number and reason)."""

    def __init__(self, path: Path | None = None, echo: bool = True, resume: bool = False) -> None:
        self.path = path
        self.echo = echo
        self.count = 0
        self.skip: set[tuple[str, int]] = set()  # rows already reported by the run being resumed
        self._file = None
        if path is not None and path.is_file():
            if resume:
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
                self.skip = {(row["source"], row["line"]) for row in rows}
                self.count = len(self.skip)
            else:
                path.unlink()

    def add(self, source: str, line: int, reason: str) -> None:
        if (source, line) in self.skip:
            return
        self.count += 1
        if self.echo:
            print(f"rejected {source}:{line}: {reason}", file=sys.stderr)
        if self.path is not None:
            if self._file is None:
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(json.dumps({"source": source, "line": line, "reason": reason}) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def iter_jsonl_documents(handle, source: str, rejects: Rejects) -> Iterator[dict]:
    """Yields `{"_id", "title", "text", "sentences"?}` from JSONL lines; bad rows go to `rejects`."""
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            rejects.add(source, number, f"invalid JSON: {error.msg}")
            continue
        if not isinstance(row, dict):
            rejects.add(source, number, f"expected a JSON object, got {type(row).__name__}")
        elif not isinstance(row.get("text"), str):
            rejects.add(source, number, "missing string field 'text'")
        elif row.get("_id") is None:
            rejects.add(source, number, "missing field '_id'")
        else:
            document = {"_id": str(row["_id"]), "title": row["title"] if isinstance(row.get("title"), str) else None,
                        "text": row["text"]}
            if isinstance(row.get("sentences"), list) and all(isinstance(s, str) for s in row["sentences"]):
                document["sentences"] = row["sentences"]
            yield document


def read_documents(paths: list[str], rejects: Rejects) -> Iterator[dict]:
    """Documents from .txt files (one document each), JSONL files, or stdin ("-"), streamed."""
    for path in paths:
        if path != "-" and not path.endswith((".jsonl", ".json")):
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as error:
                rejects.add(path, 0, f"cannot read file: {error}")
                continue
            yield {"_id": path, "title": None, "text": text}
        elif path == "-":
            yield from iter_jsonl_documents(sys.stdin, "<stdin>", rejects)
        else:
            try:
                handle = open(path, encoding="utf-8")
            except OSError as error:
                rejects.add(path, 0, f"cannot open file: {error}")
                continue
            with handle:
                yield from iter_jsonl_documents(handle, path, rejects)
