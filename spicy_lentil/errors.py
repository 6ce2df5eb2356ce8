"""Typed errors and argument checks shared by the API, the CLI and the app."""

from __future__ import annotations

from typing import Any


class SpicyLentilError(Exception):
    """Base class of the errors Spicy Lentil raises on purpose."""


class ModelLoadError(SpicyLentilError, ValueError):
    """A model folder is missing files or holds weights that do not fit its config."""


class DamagedFileError(SpicyLentilError, ValueError):
    """A file Spicy Lentil wrote (an index, an output being resumed) is truncated or malformed."""


class DataError(SpicyLentilError, ValueError):
    """A data file is missing, lacks a column, or refers to ids that do not exist."""


class OutputError(SpicyLentilError, ValueError):
    """An output cannot be written as asked: it is an input, exists already, or another process holds it."""


def surrogate_at(text: str) -> int | None:
    """Index of the first lone surrogate in `text` (it cannot be written as UTF-8), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def invalid_json(message: str, position: int) -> str:
    """A JSON parse error as every front end reports it. `json`'s messages that end in " at" lead to the
    position, which it gives apart: said whole, "Invalid control character at" reads as cut off."""
    return f"invalid JSON at position {position}: {message.removesuffix(' at')}"


def check_text(text: str, name: str) -> str:
    """Raises ValueError naming the argument when `text` holds a lone surrogate."""
    at = surrogate_at(text)
    if at is not None:
        raise ValueError(
            f"{name} holds a lone surrogate {text[at]!r} at character {at}, which is not valid Unicode text"
        )
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


def check_threshold(value: Any, name: str = "threshold") -> float | None:
    """Returns `value` if it is None or a number in [0, 1]; raises TypeError/ValueError naming the argument."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return float(value)


def check_query(query: Any, name: str = "query") -> str:
    """Returns the query if it is a string with a letter or digit; raises TypeError/ValueError naming the argument.

    A query of only punctuation, symbols or control characters asks nothing, yet the encoder would still
    place it somewhere and the model score documents against it ("..." scored "..." at 0.94).
    """
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a string, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must not be empty or whitespace only")
    check_text(query, name)
    if not any(character.isalnum() for character in query):
        raise ValueError(f"{name} has no letter or digit (only punctuation, symbols or control characters)")
    return query
