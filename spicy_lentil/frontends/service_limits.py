"""What one HTTP request may hold, and the API key's variable: apart from `server`, so that the command line
builds its parser (the `serve` flags' defaults) without importing FastAPI on every start."""

from __future__ import annotations

from dataclasses import dataclass

API_KEY_ENV = "SPICY_LENTIL_API_KEY"


@dataclass(frozen=True)
class Limits:
    """What one request may hold; over these it is refused before any scoring."""

    max_body_bytes: int = 8 * 1024 * 1024  # request body, as sent
    max_documents: int = 1000  # documents per request
    max_document_chars: int = 100_000  # characters per document (its text, or its sentences together)
    max_request_seconds: float = 120.0  # scoring time per request, waiting for the model included
