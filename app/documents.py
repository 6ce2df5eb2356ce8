"""Where the app's documents come from: the demo corpus, pasted text and uploaded files.

Pure functions, no Streamlit, so the rules the page states (types, sizes, counts) are tested directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from spicy_lentil.io import iter_jsonl_documents

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEMO_CORPUS = DATA_DIR / "demo_corpus.jsonl"
DEMO_QUERIES = DATA_DIR / "demo_queries.jsonl"

ALLOWED_EXTENSIONS = (".txt", ".md", ".jsonl")
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_FILES = 20
MAX_PASTE_CHARS = 2 * 1024 * 1024  # the paste box holds as much as one uploaded file
PASTE_SEPARATOR = "---"

_SEPARATOR_LINE = re.compile(rf"^[ \t]*{re.escape(PASTE_SEPARATOR)}[ \t]*$", re.MULTILINE)


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def demo_corpus() -> list[dict]:
    return read_jsonl(DEMO_CORPUS)


def demo_queries() -> list[str]:
    return [row["text"] for row in read_jsonl(DEMO_QUERIES)]


def split_pasted(text: str) -> list[dict]:
    """One document per block of pasted text; a line holding only `---` separates documents."""
    blocks = [block.strip() for block in _SEPARATOR_LINE.split(text or "")]
    return [
        {"_id": f"pasted-{i}", "title": f"Pasted text {i}", "text": block}
        for i, block in enumerate((b for b in blocks if b), start=1)
    ]


class UploadedFile(Protocol):
    """What the loader needs of an upload (Streamlit's `UploadedFile` has it)."""

    name: str
    size: int

    def getvalue(self) -> bytes: ...


@dataclass
class Upload:
    """An upload held in memory: a file read elsewhere, or a test's."""

    name: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def getvalue(self) -> bytes:
        return self.data


def paste_problem(text: str) -> str | None:
    """Why pasted text is refused (the browser's limit is not trusted), or None."""
    if len(text or "") > MAX_PASTE_CHARS:
        return (
            f"The pasted text has {len(text):,} characters, over the {MAX_PASTE_CHARS:,} limit; "
            "upload it as files instead."
        )
    return None


def load_uploads(files: Sequence[UploadedFile]) -> tuple[list[dict], list[str]]:
    """Parses uploaded files into documents, collecting one message per problem instead of failing.

    Count, type and size are checked before a file's bytes are read: the browser's checks can be
    bypassed, so the server enforces them again.

    Args:
        files: the uploads in upload order.

    Returns:
        (documents, errors): documents as {"_id", "title", "text"}; each error names the file
        (and the line, for a JSONL row). A bad file or row never stops the others from loading.
    """
    documents: list[dict] = []
    errors: list[str] = []
    limit = f"the {MAX_FILE_BYTES // (1024 * 1024)} MB limit"
    for index, upload in enumerate(files):
        name = upload.name
        if index >= MAX_FILES:
            errors.append(f"{name}: not loaded, only the first {MAX_FILES} files are read")
            continue
        extension = Path(name).suffix.lower()
        if extension not in ALLOWED_EXTENSIONS:
            errors.append(f"{name}: unsupported file type {extension or '(none)'}; use {', '.join(ALLOWED_EXTENSIONS)}")
            continue
        if upload.size > MAX_FILE_BYTES:
            errors.append(f"{name}: {upload.size / 1024 / 1024:.1f} MB is over {limit}")
            continue
        content = upload.getvalue()
        if len(content) > MAX_FILE_BYTES:  # a size that understated the content
            errors.append(f"{name}: {len(content) / 1024 / 1024:.1f} MB is over {limit}")
            continue
        if extension == ".jsonl":
            rows, row_errors = _parse_jsonl(name, content)
            documents.extend(rows)
            errors.extend(row_errors)
            continue
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            errors.append(f"{name}: not UTF-8 text (byte {error.start} cannot be decoded)")
            continue
        if not text.strip():
            errors.append(f"{name}: the file is empty")
        else:
            documents.append({"_id": name, "title": Path(name).stem, "text": text})
    return documents, errors


def _parse_jsonl(name: str, content: bytes) -> tuple[list[dict], list[str]]:
    """Rows of a JSONL upload, read as the command line reads them (`io.iter_jsonl_documents`): one bad
    byte, row or repeated id costs only its row; a row without "_id" is named by its file and line."""
    errors = _RowErrors()
    documents = list(iter_jsonl_documents(content.splitlines(), name, errors, default_ids=True, allow_empty=False))
    for document in documents:
        if document["title"] is not None and not document["title"].strip():
            document["title"] = None
    if not documents and not errors:
        errors.append(f"{name}: the file has no rows")
    return documents, errors


class _RowErrors(list):
    """Collects the reader's rejects as the app's messages."""

    def add(self, source: str, line: int, reason: str) -> None:
        self.append(f"{source} line {line}: {reason}")
