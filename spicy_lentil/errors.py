"""Typed errors and argument checks shared by the API, the CLI and the app."""

from __future__ import annotations

from typing import Any


class SpicyLentilError(Exception):
    """Base class of the errors Spicy Lentil raises on purpose."""


class ModelLoadError(SpicyLentilError, ValueError):
    """A model folder is missing files or holds weights that do not fit its config."""


def check_query(query: Any, name: str = "query") -> str:
    """Returns the query if it is a non-blank string; raises TypeError/ValueError naming the argument."""
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must not be empty or whitespace only")
    return query


def as_document(document: Any, name: str) -> tuple[str | None, str | None, str]:
    """Normalises a document to (id, title, text): a string, or a dict with "text" and optional "title", "_id"."""
    if isinstance(document, str):
        return None, None, document
    if isinstance(document, dict):
        text = document.get("text")
        if not isinstance(text, str):
            raise TypeError(f"{name} must have a string 'text', got {type(text).__name__}")
        title = document.get("title")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"{name}['title'] must be a string, got {type(title).__name__}")
        doc_id = document.get("_id", document.get("id"))
        return (None if doc_id is None else str(doc_id)), (title or None), text
    raise TypeError(f"{name} must be a string or a dict with 'text', got {type(document).__name__}")
