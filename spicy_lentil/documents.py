"""The input document: what every front end accepts (a string, a list of sentences, or a dict with
"text" or "sentences", a "title" and an id) and the one reading of it the engine scores."""

from __future__ import annotations

from typing import Any, NamedTuple

from .errors import check_text

ID_KEYS = ("_id", "id")  # a document's id: "_id" as BEIR corpora write it, or "id" as Cohere clients send it


def document_id(document: dict, name: str = "") -> str | None:
    """A dict document's id as text, or None when it has none: its "_id" or its "id" (not both), a string or
    an integer; `5` and `"5"` are the same id. Errors name the key, after `name` when given.

    Raises:
        TypeError: the id is neither a string nor an integer (a bool, float or list would not read back the same).
        ValueError: both keys are given, or the id is blank or holds a lone surrogate.
    """
    given = [key for key in ID_KEYS if document.get(key) is not None]
    if not given:
        return None
    label = " and ".join(f"{name}[{key!r}]" if name else repr(key) for key in given)
    if len(given) > 1:
        raise ValueError(f"{label} are both given: give one id")
    value = document[given[0]]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"{label} must be a string or an integer, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise ValueError(f"{label} is empty")
    return check_text(text, label)


class Document(NamedTuple):
    """A document as the engine reads it."""

    id: str | None
    title: str | None
    text: str  # for a pre-split document, its sentences joined by one space
    sentences: list[str] | None  # the caller's sentence split (one slot each), or None to split `text`


def as_document(document: Any, name: str) -> Document:
    """Normalises a document: a string, a list of sentences, or a dict with "text" or "sentences" and optional
    "title" and id (`document_id`). Given sentences are stripped and joined by one space: that joined text is
    what slot spans refer to; a dict with both "sentences" and "text" is scored by its sentences."""
    if isinstance(document, str):
        return Document(None, None, check_text(document, name), None)
    if isinstance(document, (list, tuple)):
        sentences = _sentences(document, name)
        return Document(None, None, " ".join(sentences), sentences)
    if isinstance(document, dict):
        sentences = document.get("sentences")
        text = document.get("text")
        if sentences is not None:
            sentences = _sentences(sentences, f"{name}['sentences']")
            text = " ".join(sentences)
        elif not isinstance(text, str):
            raise TypeError(
                f"{name} must have a string 'text' or a list of strings 'sentences', "
                f"got 'text' of type {type(text).__name__}"
            )
        title = document.get("title")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"{name}['title'] must be a string, got {type(title).__name__}")
        check_text(text, f"{name}['text']")
        if title is not None:
            check_text(title, f"{name}['title']")
        return Document(document_id(document, name), title or None, text, sentences)
    raise TypeError(
        f"{name} must be a string, a list of sentences or a dict with 'text', got {type(document).__name__}"
    )


def _sentences(sentences: Any, name: str) -> list[str]:
    """A pre-split document's sentences, stripped; a blank one is refused, as it would shift every later index."""
    if not isinstance(sentences, (list, tuple)):
        raise TypeError(f"{name} must be a list of strings, got {type(sentences).__name__}")
    stripped = []
    for i, sentence in enumerate(sentences):
        if not isinstance(sentence, str):
            raise TypeError(f"{name}[{i}] must be a string, got {type(sentence).__name__}")
        if not sentence.strip():
            raise ValueError(f"{name}[{i}] is empty; drop it (sentence indices would no longer match)")
        stripped.append(check_text(sentence.strip(), f"{name}[{i}]"))
    return stripped
