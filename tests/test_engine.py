import json

import pytest
import torch

from spicy_lentil import ModelLoadError, SpicyLentil
from spicy_lentil.network.encoder import EncoderCalls

QUERY = "Does vitamin D deficiency weaken bones?"
DOCS = [
    "Vitamin D helps the gut absorb calcium. Without it, bones become thin and brittle.",
    {
        "_id": "py",
        "title": "Python",
        "text": "Python is a programming language.\n\n- It is readable.\n- It is popular.",
    },
    "The Roman Empire split into east and west. Constantinople became the eastern capital in 330 AD.",
    "Short.",
]


def test_field_contract(lentil):
    field = lentil.field(QUERY, DOCS[0])
    assert 0.0 <= field.score <= 1.0
    assert len(field.slots) == 2
    for slot in field.slots:
        assert DOCS[0][slot.start : slot.end] == slot.text
        assert 0.0 <= slot.score <= 1.0
    assert set(field.gate) == set(lentil.model.pathway_names)
    assert len(field.active) == lentil.pathways_per_query
    assert sum(field.gate.values()) == pytest.approx(1.0, abs=1e-5)
    assert all(field.gate[name] == 0.0 for name in field.gate if name not in field.active)
    weights = [field.gate[name] for name in field.active]
    assert weights == sorted(weights, reverse=True)
    assert len(field.pathway_attention) == len(field.slots)
    for attention in field.pathway_attention:
        assert all(attention[name] == 0.0 for name in attention if name not in field.active)
    assert json.loads(json.dumps(field.to_dict()))["slots"][0]["text"] == field.slots[0].text


def test_batched_fields_equal_one_by_one(lentil):
    batched = lentil.fields(QUERY, DOCS, batch_size=3)
    for doc, field in zip(DOCS, batched):
        single = lentil.field(QUERY, doc)
        assert field.score == pytest.approx(single.score, abs=1e-5)
        assert [s.score for s in field.slots] == pytest.approx([s.score for s in single.slots], abs=1e-5)
    assert batched[1].document_id == "py"


def test_iter_fields_accepts_generators_in_order(lentil):
    streamed = list(lentil.iter_fields(QUERY, (d for d in DOCS), batch_size=2))
    listed = lentil.fields(QUERY, DOCS)
    assert [f.score for f in streamed] == pytest.approx([f.score for f in listed], abs=1e-6)


def test_save_and_reload_give_same_scores(lentil, tmp_path):
    lentil.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "encoder.safetensors", "model.safetensors"]
    reloaded = SpicyLentil.from_pretrained(tmp_path)
    before = torch.tensor(lentil.score(QUERY, DOCS))
    after = torch.tensor(reloaded.score(QUERY, DOCS))
    assert torch.allclose(before, after, atol=1e-6)


def test_missing_or_mismatched_model_folder(tmp_path, lentil):
    with pytest.raises(ModelLoadError, match="config.json"):
        SpicyLentil.from_pretrained(tmp_path)
    lentil.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["hidden_dim"] = 36
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not fit"):
        SpicyLentil.from_pretrained(tmp_path)


def test_pathways_per_query_is_live(own_lentil):
    for k in (1, 2, 9):
        own_lentil.pathways_per_query = k
        field = own_lentil.field(QUERY, DOCS[0])
        assert len(field.active) == k
        assert sum(v > 0 for v in field.gate.values()) == k
    for bad in (0, 10):
        with pytest.raises(ValueError, match="pathways_per_query"):
            own_lentil.pathways_per_query = bad
    with pytest.raises(TypeError, match="pathways_per_query"):
        own_lentil.pathways_per_query = 2.5


def test_rank_is_sentence_transformers_style(lentil):
    ranked = lentil.rank(QUERY, DOCS, top_k=3)
    assert len(ranked) == 3
    assert set(ranked[0]) == {"corpus_id", "score", "text"}
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True)
    all_scores = lentil.score(QUERY, DOCS)
    for r in ranked:
        assert r["score"] == pytest.approx(all_scores[r["corpus_id"]], abs=1e-6)
    assert ranked[0]["text"] in [d if isinstance(d, str) else d["text"] for d in DOCS]
    assert ranked[0]["corpus_id"] == 0  # the vitamin D document answers the vitamin D query
    assert ranked[0]["text"] == DOCS[0]


def test_compress_keeps_best_slots_in_document_order_within_budget(lentil):
    budget = 25
    compressed = lentil.compress(QUERY, DOCS, budget_tokens=budget)
    assert 0 < compressed.kept_tokens <= budget
    assert compressed.total_tokens > compressed.kept_tokens
    positions = [(d, s.start) for d, s in compressed.selected]
    assert positions == sorted(positions)
    all_slots = [(d, s) for d, f in enumerate(lentil.fields(QUERY, DOCS)) for s in f.slots]
    best = max(all_slots, key=lambda ds: ds[1].score)
    assert best[1].text in compressed.text  # the single best slot always fits this budget
    assert compressed.kept_share == pytest.approx(compressed.kept_tokens / compressed.total_tokens)
    json.dumps(compressed.to_dict())


@pytest.mark.parametrize("query, error", [(None, TypeError), (42, TypeError), ("", ValueError), ("  \n", ValueError)])
def test_bad_query(lentil, query, error):
    with pytest.raises(error, match="query"):
        lentil.field(query, DOCS[0])
    with pytest.raises(error, match="query"):
        lentil.fields(query, DOCS)


@pytest.mark.parametrize("documents", [None, "a string", 42, {"text": "x"}])
def test_bad_documents_argument(lentil, documents):
    with pytest.raises(TypeError, match="documents"):
        lentil.fields(QUERY, documents)


def test_bad_document_items_are_named(lentil):
    with pytest.raises(TypeError, match=r"documents\[1\]"):
        lentil.fields(QUERY, ["fine", 7])
    with pytest.raises(TypeError, match=r"documents\[0\]"):
        lentil.fields(QUERY, [{"title": "no text"}])


@pytest.mark.parametrize("document", ["", "   ", "\n\t"])
def test_empty_document_scores_zero(lentil, document):
    field = lentil.field(QUERY, document)
    assert field.score == 0.0 and field.slots == [] and not field.truncated
    assert len(field.active) == lentil.pathways_per_query


def test_hostile_documents_score(lentil):
    big = ("Calcium and vitamin D matter for bone health in older adults. " * 17000)[:1_000_000]
    for document in [
        big,
        "ctrl\x00\x01\x1b[31m chars. more\x7f",
        "😀🦴💊 emoji only 🦴.",
        "فيتامين د مهم للعظام. ויטמין די חשוב.",
    ]:
        field = lentil.field(QUERY, document)
        assert 0.0 <= field.score <= 1.0 and field.slots
        for slot in field.slots:
            assert document[slot.start : slot.end] == slot.text
    assert lentil.field(QUERY, big).truncated
    assert len(lentil.field(QUERY, big).slots) == lentil.config.max_slots


def test_encoder_cache_encodes_a_document_once(lentil):
    encoder = lentil.encoder
    encoder.clear_cache()
    encoder.calls.reset()
    lentil.field(QUERY, DOCS[2])
    assert encoder.calls.snapshot() == EncoderCalls(batches=2, texts=3, cached=0)  # the query, then the two slots
    lentil.field("Another query about Rome", DOCS[2])
    assert encoder.calls.snapshot() == EncoderCalls(batches=3, texts=4, cached=2)  # the slots came from the cache


def test_encoder_calls_count_batches_and_reset(lentil):
    encoder = lentil.encoder
    encoder.calls.reset()
    assert encoder.calls.snapshot() == EncoderCalls()
    encoder.encode([f"Counted sentence {i}." for i in range(5)], batch_size=2, use_cache=False)
    assert encoder.calls.snapshot() == EncoderCalls(batches=3, texts=5, cached=0)  # 2 + 2 + 1 texts, no cache


@pytest.fixture
def restore_runtime():
    from spicy_lentil import runtime

    threads, workers = torch.get_num_threads(), runtime.batch_workers()
    yield runtime
    runtime.configure(threads=workers)  # as many batch workers as before
    torch.set_num_threads(threads)  # and the caller's intra-op threads


def test_runtime_configure_sets_threads_workers_blas_and_keeps_freed_memory_on_glibc(restore_runtime):
    import platform

    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    result = restore_runtime.configure(threads=2)
    assert result == {
        "threads": 1,
        "batch_workers": 2,
        "blas_threads": 1,
        "keep_freed_memory": result["keep_freed_memory"],
    }
    assert torch.get_num_threads() == 1
    assert blas_threads() == {1}  # no BLAS helper threads spinning beside the batch workers
    assert result["keep_freed_memory"] == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")
    assert restore_runtime.configure(threads=2, parallel_batches=False, keep_freed_memory=False) == {
        "threads": 2,
        "batch_workers": 1,
        "blas_threads": 2,
        "keep_freed_memory": False,
    }
    assert blas_threads() == {2}


def test_batch_workers_run_one_thread_each_in_order_and_leave_the_caller_alone(restore_runtime):
    import threading

    restore_runtime.configure(threads=2)  # two batch workers
    torch.set_num_threads(2)  # while the caller keeps two intra-op threads
    seen = restore_runtime.map_batches(
        lambda b: (b, torch.get_num_threads(), threading.current_thread().name), range(6)
    )
    seen = list(seen)
    assert [b for b, _, _ in seen] == list(range(6))
    assert {threads for _, threads, _ in seen} == {1}
    assert all(name.startswith("spicy-lentil-batch") for _, _, name in seen)
    assert torch.get_num_threads() == 2
    fresh = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert fresh == [2]  # threads started later still begin with the caller's count


def test_parallel_batches_give_the_sequential_results(lentil, restore_runtime):
    texts = [f"Sentence {i} " + "about vitamin D and bones " * (i % 5) for i in range(12)]
    restore_runtime.configure(threads=2, parallel_batches=False)
    sequential = lentil.fields(QUERY, DOCS, batch_size=1)
    encoded = lentil.encoder.encode(texts, batch_size=2, use_cache=False)
    restore_runtime.configure(threads=2)
    parallel = lentil.fields(QUERY, DOCS, batch_size=1)
    for a, b in zip(parallel, sequential):  # equal up to the summation order of one thread against two
        assert a.document_id == b.document_id and [s.text for s in a.slots] == [s.text for s in b.slots]
        assert a.score == pytest.approx(b.score, abs=1e-6)
        assert [s.score for s in a.slots] == pytest.approx([s.score for s in b.slots], abs=1e-6)
    for a, b in zip(lentil.encoder.encode(texts, batch_size=2, use_cache=False), encoded):
        assert torch.equal(a.token_ids, b.token_ids)
        assert torch.allclose(a.embedding, b.embedding, atol=1e-6) and torch.allclose(
            a.tokens.float(), b.tokens.float(), atol=1e-3
        )


def test_encoder_batches_by_token_count_but_keeps_input_order(lentil):
    texts = [f"Sentence {i} " + "about vitamin D and bones " * (i % 7) for i in range(20)]
    together = lentil.encoder.encode(texts, batch_size=4, use_cache=False)
    for text, encoding in zip(texts, together):
        alone = lentil.encoder.encode([text], use_cache=False)[0]
        assert torch.equal(encoding.token_ids, alone.token_ids)
        assert torch.allclose(encoding.embedding, alone.embedding, atol=1e-5)


def test_balanced_batches_cap_rows_and_tokens_and_share_the_work():
    from spicy_lentil.network.scheduling import balanced_batches

    tokens = [10, 10, 20, 30, 30, 40, 50, 500]  # sorted, as the engine sorts them
    batches = balanced_batches(list(range(len(tokens))), tokens.__getitem__, batch_size=3, max_tokens=100, workers=2)
    assert sorted(r for b in batches for r in b) == list(range(len(tokens)))
    assert batches[0] == [7]  # a document over the budget still gets a batch of its own
    assert len(batches[1:]) == 4  # 190 tokens in 7 rows: 3 batches by rows, 2 by tokens, then a multiple of the workers
    assert all(len(b) <= 3 and sum(tokens[r] for r in b) <= 100 for b in batches[1:])
    even = list(range(100))
    batches = balanced_batches(even, lambda r: 200 + r, batch_size=64, max_tokens=16384, workers=2)
    assert [len(b) for b in batches] == [50, 50]  # one batch per worker, not 64 + 36
    sums = [sum(200 + r for r in b) for b in batches]
    assert max(sums) / min(sums) < 1.01  # rows of every length in each
    assert balanced_batches([], len, 32, 100, 2) == [] and balanced_batches([0], lambda r: 5, 32, 100, 2) == [[0]]


def test_the_gate_runs_once_per_query_before_the_models_own_pass(own_lentil):
    calls = []
    own_lentil.model.gate.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    own_lentil.field(QUERY, DOCS[0])
    assert calls == [1, 1]  # the query's routing once, then the model's pass over the one document
