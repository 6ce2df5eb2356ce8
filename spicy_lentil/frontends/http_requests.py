"""The HTTP service's request bodies: one strict model per endpoint, the name and message of the first thing
wrong with a body, and the documents in the forms the engine takes.

The models are strict (`"2"` is not a number, nor `"yes"` a bool): FastAPI validates each body against them
before a route runs, and `server` answers their errors with a 422 naming the field (`first_problem`).
"""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    """A request body part, validated strictly: JSON types as the schema says, no coercion."""

    model_config = ConfigDict(strict=True)


class DocumentObject(_Strict):
    """A document as an object: its text, or its sentences (pre-split; spans then refer to them joined by one
    space; given both, the sentences are scored, as everywhere). Its id is "id" or "_id", not both."""

    model_config = ConfigDict(extra="ignore")  # Cohere clients may send fields this server does not use

    text: str | None = None
    sentences: list[str] | None = None
    title: str | None = None
    id: str | int | None = None
    underscore_id: str | int | None = Field(default=None, alias="_id")

    @model_validator(mode="after")
    def _text_or_sentences(self) -> "DocumentObject":
        if self.text is None and self.sentences is None:
            raise ValueError("give 'text' or 'sentences'")
        return self


DocumentIn = Union[str, list[str], DocumentObject]


class CohereRerankRequest(_Strict):
    """Cohere's `POST /v1/rerank` body; `model` is accepted and ignored (this server serves one model)."""

    query: str
    documents: list[DocumentIn]
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool = False
    model: str | None = None


class TEIRerankRequest(_Strict):
    """text-embeddings-inference's `POST /rerank` body; truncation is the slotter's, so `truncate` is ignored."""

    query: str
    texts: list[str]
    return_text: bool = False
    raw_scores: bool = False
    truncate: bool | None = None


class HighlightRequest(_Strict):
    query: str
    documents: list[DocumentIn]
    threshold: float | None = Field(
        default=None, ge=0.0, le=1.0, description="also list the sentences scoring at least this"
    )
    return_attention: bool = Field(
        default=False, description="include the null point's weight on each pathway, per sentence"
    )
    pathways_per_query: int | None = Field(default=None, ge=1)


class PruneRequest(_Strict):
    query: str
    documents: list[DocumentIn]
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    budget_tokens: int | None = Field(default=None, ge=1, description="most encoder tokens kept over all documents")
    pathways_per_query: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _some_rule(self) -> "PruneRequest":
        if self.threshold is None and self.budget_tokens is None:
            raise ValueError("give 'threshold', 'budget_tokens', or both")
        return self


DOCUMENT_SHAPE = "must be a string, a list of strings (sentences), or an object with 'text' or 'sentences'"


def first_problem(errors: list[dict]) -> tuple[str, str]:
    """The field (dotted path into the body) and message of the first validation error. Pydantic reports a
    document that fits no form of the union once per form, each under its form's tag; those become one."""
    if not errors:
        return "body", "invalid request"
    first = errors[0]
    location, in_union = [], False
    for part in first.get("loc", ())[1:] if first.get("loc", ())[:1] == ("body",) else first.get("loc", ()):
        if isinstance(part, str) and ("[" in part or part in ("str", "DocumentObject")):
            in_union = True
            break
        location.append(str(part))
    field = ".".join(location) or "body"
    if not in_union:
        return field, first.get("msg", "invalid request").removeprefix("Value error, ")
    prefix = tuple(first["loc"][: len(location) + 1])
    specific = [
        e["msg"].removeprefix("Value error, ")
        for e in errors
        if tuple(e["loc"][: len(prefix)]) == prefix and e["msg"].startswith("Value error, ")
    ]
    return field, specific[0] if specific else DOCUMENT_SHAPE


def engine_document(document) -> str | list[str] | dict:
    """A validated document in a form `SpicyLentil` takes: an object as a dict of the fields it was given."""
    if isinstance(document, DocumentObject):
        converted = {
            "title": document.title,
            "text": document.text,
            "sentences": document.sentences,
            "id": document.id,
            "_id": document.underscore_id,
        }
        return {k: v for k, v in converted.items() if v is not None}
    return document
