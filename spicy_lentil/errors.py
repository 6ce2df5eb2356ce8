"""Typed errors and argument checks shared by the API, the CLI and the app."""

from __future__ import annotations

from typing import Any


class SpicyLentilError(Exception):
    """Base class of the errors Spicy Lentil raises on purpose."""


class ModelLoadError(SpicyLentilError, ValueError):
    """A model folder is missing files or holds weights that do not fit its config."""


class DamagedFileError(SpicyLentilError, ValueError):
    """A file Spicy Lentil wrote (an index, an output being resumed) is truncated or malformed."""


class OutputError(SpicyLentilError, ValueError):
    """An output cannot be written as asked: it is an input, exists already, or another process holds it."""


def surrogate_at(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (it cannot be written as UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def check_text(text: str, name: str) -> str:
    """Raises ValueError naming the argument when `text` holds a lone surrogate."""
    at = surrogate_at(text)
    if at is not None:
        raise ValueError(f"{name} holds a lone surrogate {text[at]!r} at character {at}, "
                         "which is not valid Unicode text")
    return text


def check_count(value: Any, name: str, allow_none: bool = False) -> int | None:
    """Returns `value` if it is a positive int (or None when allowed); bools are refused like other non-ints."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_query(query: Any, name: str = "query") -> str:
    """Returns the query if it is a non-blank string; raises TypeError/ValueError naming the argument."""
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must not be empty or whitespace only")
    return check_text(query, name)


def as_document(document: Any, name: str) -> tuple[str | None, str | None, str]:
    """Normalises a document to (id, title, text): a string, or a dict with "text" and optional "title", "_id"."""
    if isinstance(document, str):
        return None, None, check_text(document, name)
    if isinstance(document, dict):
        text = document.get("text")
        if not isinstance(text, str):
            raise TypeError(f"{name} must have a string 'text', got {type(text).__name__}")
        title = document.get("title")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"{name}['title'] must be a string, got {type(title).__name__}")
        check_text(text, f"{name}['text']")
        if title is not None:
            check_text(title, f"{name}['title']")
        doc_id = document.get("_id", document.get("id"))
        doc_id = None if doc_id is None else str(doc_id)
        if doc_id is not None:
            check_text(doc_id, f"{name}['_id']")
        return doc_id, (title or None), text
    raise TypeError(f"{name} must be a string or a dict with 'text', got {type(document).__name__}")
