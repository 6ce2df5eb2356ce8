"""One SpicyLentil shared by threads (the server's worker threads, a user's pool) scores as it does alone."""

from concurrent.futures import ThreadPoolExecutor

import pytest


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
