"""Each framework component inside a tiny real pipeline of its framework: a retriever over a few documents, then
Spicy Lentil. The answering document must come first, scores must be the model's, and pruning must keep spans."""

import pytest

from spicy_lentil.frontends.integrations import Judge

QUERY = "How long does the battery take to charge?"
ANSWER = (
    "The vacuum ships with a lithium-ion battery pack. A full charge from empty takes about 4.5 hours. "
    "The dock mounts on a wall."
)
TEXTS = [
    "Preheat the oven to 200 degrees. Roast the vegetables for 40 minutes.",
    ANSWER,
    "The lease runs for twelve months. The tenant pays the rent on the first day of each month.",
    "Python lists are mutable sequences. Tuples cannot be changed after they are made.",
]


@pytest.fixture(scope="module")
def expected(lentil):
    return lentil.score(QUERY, TEXTS)


def _kept_spans_hold(text: str, sentences: list[dict]) -> bool:
    return all(text[s["start"] : s["end"]] == s["text"] for s in sentences)


def test_judge_validates_its_arguments(lentil):
    with pytest.raises(ValueError):
        Judge(lentil, threshold=1.5)
    with pytest.raises(TypeError):
        Judge(lentil, top_n=True)
    assert Judge(lentil)(QUERY, []) == []


@pytest.mark.parametrize("component", ["langchain", "llama_index"])
def test_components_take_the_judges_settings_or_a_judge_never_both(lentil, component):
    if component == "langchain":
        from spicy_lentil.frontends.integrations.langchain import SpicyLentilCompressor as Component
    else:
        from spicy_lentil.frontends.integrations.llama_index import SpicyLentilPostprocessor as Component
    made = Component(lentil=lentil, top_n=2, threshold=0.05, pathways_per_query=3)
    assert (made.judge.lentil, made.judge.top_n, made.judge.threshold, made.judge.pathways_per_query) == (
        lentil,
        2,
        0.05,
        3,
    )
    judge = Judge(lentil, top_n=1)
    assert Component(judge=judge).judge is judge
    with pytest.raises(ValueError, match="not both"):
        Component(judge=judge, top_n=2)
    with pytest.raises(ValueError):  # a misspelt setting is refused, not dropped
        Component(lentil=lentil, top_k=2)
    with pytest.raises(TypeError):
        Component(lentil=lentil, top_n="2")


def test_langchain_compressor_in_a_retrieval_chain(lentil, expected):
    from langchain_core.documents import Document
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from spicy_lentil.frontends.integrations.langchain import SpicyLentilCompressor

    store = InMemoryVectorStore(DeterministicFakeEmbedding(size=16))
    store.add_documents([Document(page_content=t, metadata={"n": i}) for i, t in enumerate(TEXTS)])
    compressor = SpicyLentilCompressor(lentil=lentil, top_n=2)
    chain = {"documents": store.as_retriever(search_kwargs={"k": 4}), "query": RunnablePassthrough()} | RunnableLambda(
        lambda x: compressor.compress_documents(x["documents"], x["query"])
    )
    documents = chain.invoke(QUERY)
    assert len(documents) == 2
    assert documents[0].page_content == ANSWER and documents[0].metadata["n"] == 1
    assert documents[0].metadata["relevance_score"] == pytest.approx(max(expected), abs=1e-6)
    assert documents[0].metadata["relevance_score"] >= documents[1].metadata["relevance_score"]

    pruned = SpicyLentilCompressor(lentil=lentil, threshold=0.05).compress_documents(
        [Document(page_content=ANSWER)], QUERY
    )
    assert len(pruned) == 1 and pruned[0].page_content != ANSWER and "4.5 hours" in pruned[0].page_content
    assert _kept_spans_hold(ANSWER, pruned[0].metadata["sentences"])


def test_llama_index_postprocessor_in_a_query_engine(lentil, expected):
    from llama_index.core import SummaryIndex
    from llama_index.core.llms.mock import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText
    from llama_index.core.schema import TextNode

    from spicy_lentil.frontends.integrations.llama_index import SpicyLentilPostprocessor

    index = SummaryIndex([TextNode(text=t, id_=f"n{i}") for i, t in enumerate(TEXTS)])
    engine = RetrieverQueryEngine(
        index.as_retriever(),
        NoText(llm=MockLLM()),
        node_postprocessors=[SpicyLentilPostprocessor(lentil=lentil, top_n=3)],
    )
    nodes = engine.query(QUERY).source_nodes
    assert len(nodes) == 3
    assert nodes[0].node.node_id == "n1" and nodes[0].score == pytest.approx(max(expected), abs=1e-6)
    assert [n.score for n in nodes] == sorted((n.score for n in nodes), reverse=True)

    pruning = SpicyLentilPostprocessor(lentil=lentil, threshold=0.05)
    kept = pruning.postprocess_nodes([n for n in index.as_retriever().retrieve(QUERY)], query_str=QUERY)
    assert [n.node.node_id for n in kept][:1] == ["n1"]
    assert "4.5 hours" in kept[0].node.get_content() and _kept_spans_hold(ANSWER, kept[0].node.metadata["sentences"])


def test_llama_index_keeps_the_sentences_out_of_what_the_llm_and_embedder_see(lentil):
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

    from spicy_lentil.frontends.integrations.llama_index import SpicyLentilPostprocessor

    node = TextNode(text=ANSWER, metadata={"source": "manual.pdf"}, excluded_llm_metadata_keys=["source"])
    (kept,) = SpicyLentilPostprocessor(judge=Judge(lentil, threshold=0.05)).postprocess_nodes(
        [NodeWithScore(node=node)], query_str=QUERY
    )
    assert kept.node.metadata["sentences"] and "4.5 hours" in kept.node.text
    assert kept.node.get_content(metadata_mode=MetadataMode.LLM) == kept.node.text
    assert kept.node.get_content(metadata_mode=MetadataMode.EMBED) == f"source: manual.pdf\n\n{kept.node.text}"


def test_haystack_ranker_in_a_pipeline(lentil, expected):
    from haystack import Document, Pipeline
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from spicy_lentil.frontends.integrations.haystack import SpicyLentilRanker

    store = InMemoryDocumentStore()
    store.write_documents([Document(content=t, meta={"n": i}) for i, t in enumerate(TEXTS)])
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store, top_k=4))
    ranker = SpicyLentilRanker()
    ranker.judge = Judge(lentil)  # warmed up with the session's model, not a second copy of it
    pipeline.add_component("ranker", ranker)
    pipeline.connect("retriever.documents", "ranker.documents")
    result = pipeline.run({"retriever": {"query": QUERY}, "ranker": {"query": QUERY, "top_k": 2}})
    documents = result["ranker"]["documents"]
    assert len(documents) == 2
    assert documents[0].meta["n"] == 1 and documents[0].score == pytest.approx(max(expected), abs=1e-6)
    assert _kept_spans_hold(documents[0].content, documents[0].meta["sentences"])


def test_haystack_ranker_is_saved_with_its_pipeline_and_loads_its_model_in_warm_up(lentil, expected, monkeypatch):
    from haystack import Document, Pipeline

    from spicy_lentil import SpicyLentil
    from spicy_lentil.frontends.integrations.haystack import SpicyLentilRanker

    loaded = []
    monkeypatch.setattr(SpicyLentil, "from_pretrained", lambda path=None: loaded.append(path) or lentil)
    pipeline = Pipeline()
    pipeline.add_component("ranker", SpicyLentilRanker(top_k=2, threshold=None, pathways_per_query=4))
    assert loaded == []  # nothing loads before warm_up
    restored = Pipeline.loads(pipeline.dumps(), allowed_modules=["spicy_lentil.frontends.integrations.haystack"])
    ranker = restored.get_component("ranker")
    assert (ranker.model, ranker.top_k, ranker.pathways_per_query) == (None, 2, 4)
    documents = restored.run({"ranker": {"query": QUERY, "documents": [Document(content=t) for t in TEXTS]}})
    assert loaded == [None]
    scores = [d.score for d in documents["ranker"]["documents"]]
    assert scores == pytest.approx(sorted(expected, reverse=True)[:2], abs=1e-6)
    with pytest.raises(ValueError):
        SpicyLentilRanker(threshold=2.0)
