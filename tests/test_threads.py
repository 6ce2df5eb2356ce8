"""One SpicyLentil shared by threads (the server's worker threads, a user's pool) scores as it does alone."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch


def _documents(worker: int, round_: int) -> list[str]:
    # Distinct texts of different lengths each call, so every call tokenizes (nothing comes from the cache).
    return [
        " ".join([f"Sentence {j} of document {d} in round {round_} by worker {worker} about stars."] * (1 + d % 4))
        for d in range(6)
        for j in range(1 + d % 3)
    ]


def test_concurrent_calls_equal_serial_calls(lentil):
    jobs = [(w, r) for w in range(16) for r in range(2)]
    serial = {job: lentil.rank("how do stars end their lives", _documents(*job)) for job in jobs}
    lentil.encoder.clear_cache()
    with ThreadPoolExecutor(16) as pool:
        concurrent = dict(
            zip(
                jobs,
                pool.map(
                    lambda job: lentil.rank("how do stars end their lives", _documents(*job), pathways_per_query=4),
                    jobs,
                ),
            )
        )
    for job in jobs:
        assert [r["corpus_id"] for r in concurrent[job]] == [r["corpus_id"] for r in serial[job]]
        assert [r["score"] for r in concurrent[job]] == pytest.approx([r["score"] for r in serial[job]], abs=1e-5)


def test_tokenizing_beside_batched_encoding_equals_tokenizing_alone(lentil):
    # A padded, truncated batch (encode) and an unpadded, untruncated call (the slotter's token offsets)
    # share one Rust tokenizer: neither may see the other's settings.
    encoder = lentil.encoder
    long_text = " ".join(f"word{i} alpha-{i}" for i in range(400))  # past the encoder's token limit
    batch = [f"text {j} " * (1 + 3 * j) for j in range(8)]
    want_offsets = encoder.token_offsets(long_text)
    want_vectors = [e.embedding for e in encoder.encode(batch, use_cache=False)]
    assert len(want_offsets) > encoder.max_tokens

    def job(i):
        if i % 2:
            return encoder.token_offsets(long_text)
        return [e.embedding for e in encoder.encode(batch, use_cache=False)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(job, range(60)))
    for i, got in enumerate(results):
        if i % 2:
            assert got == want_offsets
        else:
            assert all(torch.allclose(g, w, atol=1e-5) for g, w in zip(got, want_vectors))
