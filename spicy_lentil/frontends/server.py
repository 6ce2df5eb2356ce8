"""The HTTP service: rerank in the shapes clients already speak (Cohere, text-embeddings-inference), plus
highlight and prune. FastAPI validates each request against its model, strictly (`"2"` is not a
number, nor `"yes"` a bool), so a wrong type or a missing field is a 422 naming it; everything else a
caller can get wrong is a 4xx too.

The request models are in `http_requests`; the first paragraph above is also the OpenAPI description.

Scoring runs in a worker thread, one request at a time (one model, bounded memory), so the event
loop keeps answering `/health` while a large request is scored. The worker reads the documents as it
scores them, and stops there once the request is past its time limit (503) or its client has gone.
"""

from __future__ import annotations

import asyncio
import html
import os
import secrets
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..documents import as_document
from ..errors import SpicyLentilError, invalid_json
from ..results import score_logit
from .http_requests import (
    CohereRerankRequest,
    HighlightRequest,
    PruneRequest,
    TEIRerankRequest,
    engine_document,
    first_problem,
)
from .service_limits import API_KEY_ENV, Limits

DISCONNECT_POLL_SECONDS = 0.1  # how often a request being scored checks that its client is still there

if TYPE_CHECKING:
    from .engine import SpicyLentil


class RequestRefused(Exception):
    """A request the server will not score, with its status and the field at fault."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message


def create_app(
    lentil: SpicyLentil, model_name: str = "spicy-lentil", limits: Limits = Limits(), api_key: str | None = None
) -> FastAPI:
    """The service around one loaded model.

    Args:
        lentil: the model every request is scored with.
        model_name: the id `/v1/models` reports (the model folder's name), never a path a visitor can choose.
        limits: what one request may hold.
        api_key: when set, every `/v1/*` and `/rerank` request must send it (`Authorization: Bearer KEY`
            or `X-API-Key: KEY`), checked before its body is; `/health` and the docs stay open.
    """
    # FastAPI's Swagger and ReDoc pages load their scripts from a CDN, and are blank offline: `/docs` is
    # served from here instead, a page of the endpoints with the OpenAPI schema a client or tool reads.
    app = FastAPI(
        title="Spicy Lentil", version="1", description=__doc__.split("\n\n")[0], docs_url=None, redoc_url=None
    )
    app.add_middleware(_BodyLimit, limit=limits.max_body_bytes)
    lock = threading.Lock()
    bearer, header = HTTPBearer(auto_error=False), APIKeyHeader(name="X-API-Key", auto_error=False)

    def refuse_without_key(request: Request) -> None:
        if api_key is not None and not secrets.compare_digest(_sent_key(request).encode(), api_key.encode()):
            raise RequestRefused(401, "authorization", "missing or wrong API key")

    def authorised(
        request: Request,
        # Read by `_sent_key`; declared so that the OpenAPI schema shows the two ways to send the key.
        _bearer: HTTPAuthorizationCredentials | None = Depends(bearer),
        _header: str | None = Depends(header),
    ) -> None:
        refuse_without_key(request)

    async def scored(request: Request, function, query: str, documents: list, **kwargs):
        """`function(query, documents, **kwargs)` in the worker, stopped at the next document it reads once
        the request is past its time limit or its client has disconnected."""
        deadline = time.monotonic() + limits.max_request_seconds
        gone = threading.Event()

        def watched():
            for document in documents:
                if gone.is_set():
                    raise RequestRefused(499, None, "the client disconnected")
                if time.monotonic() > deadline:
                    raise RequestRefused(
                        503,
                        None,
                        f"the request ran past this server's limit of {limits.max_request_seconds:g} s; "
                        "send fewer or shorter documents",
                    )
                yield document

        def call():
            with lock:
                return function(query, watched(), **kwargs)

        work = asyncio.ensure_future(run_in_threadpool(call))
        while not work.done():
            await asyncio.wait({work}, timeout=DISCONNECT_POLL_SECONDS)
            if not work.done() and await request.is_disconnected():
                gone.set()
        return work.result()

    def documents_of(documents: list, field: str = "documents") -> list:
        if len(documents) > limits.max_documents:
            raise RequestRefused(
                413, field, f"{len(documents)} documents; this server takes at most {limits.max_documents}"
            )
        converted = [engine_document(document) for document in documents]
        for i, document in enumerate(converted):
            chars = len(as_document(document, f"{field}[{i}]").text)
            if chars > limits.max_document_chars:
                raise RequestRefused(
                    413, f"{field}.{i}", f"{chars} characters; at most {limits.max_document_chars} per document"
                )
        return converted

    @app.exception_handler(RequestRefused)
    async def refused(_: Request, error: RequestRefused) -> JSONResponse:
        return _error(error.status, error.field, error.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI reads the body before the key's dependency runs: without the key, say only that.
        try:
            refuse_without_key(request)
        except RequestRefused as refusal:
            return _error(refusal.status, refusal.field, refusal.message)
        errors = error.errors()
        broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if broken is not None:
            reason = broken.get("ctx", {}).get("error", "not JSON")
            return _error(400, "body", invalid_json(reason, broken["loc"][-1]))
        field, message = first_problem(errors)
        return _error(
            422, field, message, detail=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in errors]
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body that is not UTF-8 JSON: 400; an unknown path: 404), in the same shape.
        return _error(error.status_code, "body" if error.status_code == 400 else None, str(error.detail))

    @app.exception_handler(SpicyLentilError)
    @app.exception_handler(ValueError)
    @app.exception_handler(TypeError)
    async def engine_refused(_: Request, error: Exception) -> JSONResponse:
        # The engine's checks start with the argument's name ("documents[2][0] is empty", "query must ...").
        message = str(error)
        return _error(422, message.split(" ", 1)[0], message)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models", dependencies=[Depends(authorised)])
    async def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", **lentil.describe(), "limits": limits.__dict__}],
        }

    @app.post("/v1/rerank", dependencies=[Depends(authorised)])
    async def cohere_rerank(request: CohereRerankRequest, http: Request) -> dict:
        documents = documents_of(request.documents)
        scores = await scored(http, lentil.score, request.query, documents, show_progress_bar=False)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: request.top_n]
        results = [
            {
                "index": i,
                "relevance_score": scores[i],
                **({"document": {"text": as_document(documents[i], "").text}} if request.return_documents else {}),
            }
            for i in order
        ]
        return {
            "id": str(uuid.uuid4()),
            "results": results,
            "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}, "model": model_name},
        }

    @app.post("/rerank", dependencies=[Depends(authorised)])
    async def tei_rerank(request: TEIRerankRequest, http: Request) -> list[dict]:
        documents = documents_of(request.texts, "texts")
        scores = await scored(http, lentil.score, request.query, documents, show_progress_bar=False)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [
            {
                "index": i,
                "score": score_logit(scores[i]) if request.raw_scores else scores[i],
                **({"text": request.texts[i]} if request.return_text else {}),
            }
            for i in order
        ]

    @app.post("/v1/highlight", dependencies=[Depends(authorised)])
    async def highlight(request: HighlightRequest, http: Request) -> dict:
        documents = documents_of(request.documents)
        fields = await scored(
            http,
            lentil.fields,
            request.query,
            documents,
            show_progress_bar=False,
            pathways_per_query=request.pathways_per_query,
        )
        results = []
        for i, field in enumerate(fields):
            result = field.to_dict()
            if not request.return_attention:
                del result["pathway_attention"]
            result["sentences"] = result.pop("slots")
            if request.threshold is not None:
                result["spans"] = [s for s in result["sentences"] if s["score"] >= request.threshold]
            results.append({"index": i, **result})
        return {"id": str(uuid.uuid4()), "results": results, "meta": {"model": model_name}}

    @app.post("/v1/prune", dependencies=[Depends(authorised)])
    async def prune(request: PruneRequest, http: Request) -> dict:
        documents = documents_of(request.documents)
        pruned = await scored(
            http,
            lentil.prune,
            request.query,
            documents,
            threshold=request.threshold,
            budget_tokens=request.budget_tokens,
            pathways_per_query=request.pathways_per_query,
        )
        return {
            "id": str(uuid.uuid4()),
            "results": [{"index": i, **p.to_dict()} for i, p in enumerate(pruned)],
            "meta": {"model": model_name},
        }

    return app


def serve(
    lentil: SpicyLentil,
    model_name: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits = Limits(),
    api_key: str | None = None,
) -> None:
    """Runs the service with uvicorn until interrupted; `api_key` None reads SPICY_LENTIL_API_KEY (unset: no key)."""
    import uvicorn

    api_key = api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)
    uvicorn.run(create_app(lentil, model_name, limits, api_key), host=host, port=port, log_level="info")


class _BodyLimit:
    """Refuses a request body over `limit` bytes with a 413, by its Content-Length or, sent in chunks, as it arrives."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await _error(413, "body", f"the body is {int(declared)} bytes; at most {self.limit}")(
                scope, receive, send
            )
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                return await _error(413, "body", f"the body is over {self.limit} bytes")(scope, receive, send)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _error(status: int, field: str | None, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "field": field, **extra}}, status_code=status)


def _docs_page(schema: dict) -> str:
    """`/docs`: each endpoint with its summary and request body, self-contained (no script, no remote asset)."""
    schemas = schema.get("components", {}).get("schemas", {})
    rows = []
    for path, methods in schema.get("paths", {}).items():
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            model = schemas.get(body.get("$ref", "").rsplit("/", 1)[-1], {})
            fields = ", ".join(
                f"{name}{'' if name in model.get('required', []) else '?'}" for name in model.get("properties", {})
            )
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())} {html.escape(path)}</code></td>"
                f"<td>{html.escape(operation.get('summary', ''))}</td><td><code>{html.escape(fields)}</code></td></tr>"
            )
    title = html.escape(schema.get("info", {}).get("title", "API"))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>{html.escape(schema.get('info', {}).get('description', ''))}</p>"
        "<p>The request and response shapes: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3), "
        "for a client generator or an API tool; docs/reference.md, \"Over HTTP\", has examples.</p>"
        "<table><tr><th>endpoint</th><th>what</th><th>body fields (? optional)</th></tr>"
        f"{''.join(rows)}</table></body></html>"
    )


def _sent_key(request: Request) -> str:
    """The API key a request sends: `X-API-Key: KEY`, else `Authorization: Bearer KEY`; "" when none."""
    key = request.headers.get("x-api-key")
    if key:
        return key
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


