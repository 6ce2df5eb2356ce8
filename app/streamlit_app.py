"""Spicy Lentil in the browser: `spicy-lentil app [--model DIR] [--model-dir DIR ...] [--host H] [--port N]`.

A thin front end over the public API. The model is loaded once per server (and the demo corpus
encoded with it), shared by every session; results are cached per query, corpus and k, so
reruns caused by moving a slider do not score again.

A visitor never names a server path: the model box offers only the bundled model and the folders
the operator listed (`SPICY_LENTIL_MODEL_DIRS`, set by `spicy-lentil app --model-dir`). Upload and
paste limits are enforced here, before a byte is read, whatever the browser was told.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import Callable, TypeVar

import streamlit as st

from spicy_lentil import CompressedContext, RelevanceField
from spicy_lentil.app.documents import (
    ALLOWED_EXTENSIONS,
    MAX_FILE_BYTES,
    MAX_FILES,
    PASTE_SEPARATOR,
    demo_corpus,
    demo_queries,
    load_uploads,
    paste_problem,
    split_pasted,
)
from spicy_lentil.app.render import (
    CSS,
    HEATMAP_MAX_SLOTS,
    active_questions_html,
    attention_heatmap,
    document_header_html,
    field_html,
    gate_chart,
    legend_html,
    mean_attention,
    mean_attention_chart,
    pathway_chips_html,
    results_jsonl,
)
from spicy_lentil.app.service import BUNDLED_LABEL, SharedLentil, model_choices

DEMO, PASTE, UPLOAD = "Demo corpus", "Paste text", "Upload files"
MAX_ERRORS_SHOWN = 12
T = TypeVar("T")

st.set_page_config(page_title="Spicy Lentil", page_icon="🌶️", layout="wide")
st.html(CSS)


@st.cache_resource(show_spinner="Loading the model and indexing the demo corpus (once per server)…", max_entries=2)
def load_engine(folder: str) -> SharedLentil:
    return SharedLentil.load(folder, demo_corpus())


@st.cache_data(show_spinner=False)
def cached_demo_corpus() -> list[dict]:
    return demo_corpus()


@st.cache_data(show_spinner=False)
def cached_demo_queries() -> list[str]:
    return demo_queries()


# `_engine` and `_documents` are not hashed: the folder and the corpus digest stand in for them.
@st.cache_data(max_entries=64, show_spinner=False)
def score(
    _engine: SharedLentil, folder: str, query: str, k: int, corpus_key: str, _documents: list[dict]
) -> tuple[list[RelevanceField], float]:
    """The fields and how long scoring took (reported as is when a later rerun reuses them)."""
    started = time.perf_counter()
    fields = _engine.fields(query, _documents, k)
    return fields, time.perf_counter() - started


@st.cache_data(max_entries=64, show_spinner=False)
def compress(
    _engine: SharedLentil, folder: str, query: str, k: int, budget: int, corpus_key: str, _documents: list[dict]
) -> CompressedContext:
    return _engine.compress(query, _documents, k, budget)


def digest(documents: list[dict]) -> str:
    return hashlib.sha1(json.dumps(documents, sort_keys=True).encode("utf-8")).hexdigest()


def attempt(what: str, call: Callable[..., T], *args) -> T | None:
    """Runs an API call; a failure becomes a message on the page, never a traceback."""
    try:
        return call(*args)
    except Exception as error:  # noqa: BLE001 - whatever the engine raises, the page must stay usable
        st.error(f"{what}: {error}", icon=":material/warning:")
        return None


def use_suggestion(query: str) -> None:
    st.session_state.query = query


def choose_documents() -> list[dict]:
    source = st.radio("Documents", [DEMO, PASTE, UPLOAD], horizontal=True, key="source", label_visibility="collapsed")
    if source == DEMO:
        documents = cached_demo_corpus()
        st.caption(
            f"{len(documents)} short articles on science, history, computing, food and health, encoded at startup."
        )
        return documents
    if source == PASTE:
        text = st.text_area(
            "Paste text",
            key="pasted",
            height=180,
            placeholder=f"Paste one or more documents; a line holding only {PASTE_SEPARATOR} starts the next one.",
        )
        problem = paste_problem(text)
        if problem:
            st.error(problem, icon=":material/description:")
            return []
        documents = split_pasted(text)
        if documents:
            st.caption(f"{len(documents)} pasted document{'s' if len(documents) != 1 else ''}.")
        return documents
    limit_mb = MAX_FILE_BYTES // (1024 * 1024)
    uploads = st.file_uploader(
        f"Up to {MAX_FILES} files, {limit_mb} MB each: {', '.join(ALLOWED_EXTENSIONS)}",
        accept_multiple_files=True,
        key="uploads",
        max_upload_size=limit_mb,
        help=".txt and .md files are one document each; a .jsonl file holds one JSON object per line with "
        '"text" and optional "title" and "_id".',
    )
    documents, errors = load_uploads(uploads or [])
    if errors:
        shown = "\n".join(f"- {message}" for message in errors[:MAX_ERRORS_SHOWN])
        more = f"\n- … and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        st.error(f"Some uploads could not be read:\n{shown}{more}", icon=":material/description:")
    if documents:
        st.caption(f"{len(documents)} document{'s' if len(documents) != 1 else ''} loaded from your files.")
    return documents


def title_of(document: dict, index: int) -> str:
    return document.get("title") or document.get("_id") or f"Document {index + 1}"


def show_fields(
    engine: SharedLentil, documents: list[dict], fields: list[RelevanceField], ranked: list[int], stretch: bool
) -> None:
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.html(legend_html(stretch))
        for rank, i in enumerate(ranked, start=1):
            field = fields[i]
            with st.container(key=f"result-{rank}", border=True):
                st.html(document_header_html(rank, title_of(documents[i], i), field.score))
                if field.slots:
                    st.html(field_html(documents[i]["text"], field, stretch))
                else:
                    st.caption("This document is empty: there is nothing to score.")
                if field.truncated:
                    st.caption("Only the first slots were scored: the rest of this document is past the slot limit.")
    with right:
        with st.container(key="gate-chart"):
            st.subheader(
                "Gate",
                anchor=False,
                help="The gate reads the query and routes it to k of the nine pathways; only those run.",
            )
            st.altair_chart(
                gate_chart(fields[ranked[0]].gate, fields[ranked[0]].active, engine.questions), width="stretch"
            )
            st.html(active_questions_html(fields[ranked[0]].active, engine.questions))


def show_null_point(
    engine: SharedLentil, documents: list[dict], fields: list[RelevanceField], ranked: list[int]
) -> None:
    st.caption(
        "Each sentence's score fuses the active pathways at a null point; this is how much weight it gave each one."
    )
    choice = st.selectbox(
        "Document", ranked, format_func=lambda i: f"{title_of(documents[i], i)} ({fields[i].score:.3f})"
    )
    field = fields[choice]
    if not field.slots:
        st.info("This document has no slots.")
        return
    if len(field.slots) > HEATMAP_MAX_SLOTS:
        st.caption(f"Showing the first {HEATMAP_MAX_SLOTS} of {len(field.slots)} slots.")
    with st.container(key="attention-heatmap"):
        st.altair_chart(attention_heatmap(field, engine.names, engine.questions), width="stretch")


def show_routing(engine: SharedLentil, fields: list[RelevanceField], ranked: list[int]) -> None:
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("This query", anchor=False)
        st.caption(f"Mean null-point attention per pathway over all slots of the {len(ranked)} ranked documents.")
        st.altair_chart(
            mean_attention_chart(mean_attention([fields[i] for i in ranked], engine.names), engine.questions),
            width="stretch",
        )
    with right:
        statistics = attempt("Routing statistics are unavailable", engine.routing_statistics)
        if statistics is None:
            return
        st.subheader("Since start-up", anchor=False)
        st.caption(
            f"The gate's choices over all {statistics['queries']} queries scored by this server, "
            "from every session, the start-up warm-up included."
        )
        rows = [
            {"pathway": name, "chosen": values["selected_share"], "mean weight when chosen": values["mean_weight"]}
            for name, values in statistics["pathways"].items()
        ]
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            column_config={
                "chosen": st.column_config.ProgressColumn(
                    "chosen",
                    help="share of queries routed to this pathway",
                    min_value=0.0,
                    max_value=1.0,
                    format="percent",
                ),
                "mean weight when chosen": st.column_config.NumberColumn(format="%.3f"),
            },
        )


def show_compress(engine: SharedLentil, query: str, k: int, documents: list[dict], ranked: list[int]) -> None:
    st.caption(
        f"The most relevant sentences of the {len(ranked)} ranked documents that fit a token budget, "
        "in document order: a context for a language model."
    )
    budget = st.slider("Token budget", 32, 2048, 256, step=32, key="budget")
    selection = [documents[i] for i in ranked]
    context = attempt(
        "Compression failed", compress, engine, engine.folder, query, k, budget, digest(selection), selection
    )
    if context is None:
        return
    kept, total, share = st.columns(3)
    kept.metric("Tokens kept", f"{context.kept_tokens:,}")
    total.metric("Tokens in the ranked documents", f"{context.total_tokens:,}")
    share.metric("Share kept", f"{context.kept_share:.1%}")
    with st.container(key="compressed-context"):
        st.code(context.text or "(nothing fits this budget)", language=None, wrap_lines=True)


def main() -> None:
    st.title(":material/local_fire_department: Spicy Lentil", anchor=False)
    st.caption(
        "Which parts of these texts matter for this query, and why: every sentence is scored, "
        "through a few of nine pathways of relevance that the query is routed to."
    )

    with st.sidebar:
        st.header("Settings", anchor=False)
        choices = model_choices(os.environ)
        folder = st.selectbox(
            "Model",
            choices,
            key="model_folder",
            format_func=lambda c: c or BUNDLED_LABEL,
            help="The models this server's operator offers (`spicy-lentil app --model-dir`).",
        )
    engine = attempt(f"Could not load the model {folder or BUNDLED_LABEL}", load_engine, folder)
    if engine is None:
        st.stop()

    with st.sidebar:
        st.caption(f"Model: `{engine.folder}`")
        k = st.slider(
            "Pathways per query (k)",
            1,
            len(engine.names),
            engine.default_k,
            key="k",
            help="How many of the nine pathways the gate routes each query to.",
        )
        top_n = st.slider("Results shown", 1, 50, 8, key="top_n")
        stretch = st.toggle(
            "Stretch shading within each document",
            key="stretch",
            help="Shade each document from its own lowest to highest slot score, to see its shape.",
        )
        download_slot = st.empty()
        with st.expander("The nine pathways"):
            for name in engine.names:
                st.markdown(f"**{name}** · {engine.questions.get(name, '')}")

    documents = choose_documents()
    query = st.text_input(
        "Query",
        key="query",
        placeholder="Ask something, or pick an example below",
        label_visibility="collapsed",
        icon=":material/search:",
    )
    with st.container(horizontal=True, key="suggestions", gap="small"):
        for n, suggestion in enumerate(cached_demo_queries()):
            st.button(
                suggestion,
                key=f"suggestion-{n}",
                on_click=use_suggestion,
                args=(suggestion,),
                type="primary" if suggestion == query else "secondary",
            )

    if not query.strip():
        st.info("Type a query or pick an example to see which sentences matter.", icon=":material/lightbulb:")
        return
    if not documents:
        st.info("Add some documents first: paste text or upload files.", icon=":material/description:")
        return

    scored = attempt("Scoring failed", score, engine, engine.folder, query, k, digest(documents), documents)
    if scored is None:
        return
    fields, elapsed = scored
    ranked = sorted(range(len(fields)), key=lambda i: -fields[i].score)[:top_n]
    download_slot.download_button(
        "Download results (JSONL)",
        results_jsonl(query, ranked, fields),
        file_name="spicy_lentil_results.jsonl",
        mime="application/jsonl",
        icon=":material/download:",
        width="stretch",
    )

    st.html(pathway_chips_html(engine.names, fields[0].active, engine.questions))
    st.caption(
        f"{len(documents)} document{'s' if len(documents) != 1 else ''} scored in {elapsed:.2f} s · "
        f"top {len(ranked)} shown · routed to {len(fields[0].active)} of {len(engine.names)} pathways"
    )
    fields_tab, null_point_tab, routing_tab, compress_tab = st.tabs(
        ["Relevance fields", "Null point", "Routing", "Compress"]
    )
    with fields_tab:
        show_fields(engine, documents, fields, ranked, stretch)
    with null_point_tab:
        show_null_point(engine, documents, fields, ranked)
    with routing_tab:
        show_routing(engine, fields, ranked)
    with compress_tab:
        show_compress(engine, query, k, documents, ranked)


main()
