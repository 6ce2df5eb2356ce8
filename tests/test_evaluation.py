import math

import pytest

from spicy_lentil.training.evaluation import Evaluation, ranking_metrics, read_run, slot_metrics


def test_ranking_metrics_on_a_hand_checked_example():
    qrels = {"q1": {"d1": 1, "d3": 1, "d9": 0}, "q2": {"d5": 1}}
    run = {"q1": {"d2": 0.9, "d1": 0.8, "d3": 0.1, "d4": 0.05}}  # q2 retrieved nothing: it scores 0
    # q1: relevant at ranks 2 and 3 of an ideal 1, 2.
    ndcg_q1 = (1 / math.log2(3) + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    metrics = ranking_metrics(qrels, run)
    assert metrics["ndcg@10"] == pytest.approx(ndcg_q1 / 2)
    assert metrics["mrr@10"] == pytest.approx(0.5 / 2)
    assert metrics["recall@100"] == pytest.approx(1.0 / 2)


def test_slot_metrics_on_a_hand_checked_example():
    labels = {"a": [0, 1, 0, 1], "b": [1, 0], "c": [0, 0]}  # c has no rationale: not counted
    scores = {"a": [0.9, 0.8, 0.1, 0.7], "b": [0.2, 0.6], "c": [0.5, 0.4]}
    metrics = slot_metrics(labels, scores)
    # a ranks its slots 0, 1, 3, 2: rationales at ranks 2 and 3. b ranks its rationale second.
    assert metrics["slot_map"] == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1 / 2) / 2)
    assert metrics["slot_mrr"] == pytest.approx(0.5)
    # a: each rationale beats one of the two other slots (AUC 0.5); b: none (AUC 0).
    assert metrics["slot_auc"] == pytest.approx(0.25)
    assert metrics["slot_pairs"] == 2


def test_runs_are_written_in_trec_format(tmp_path):
    runs = {"spicy_lentil": {"q1": {"d2": 0.1, "d1": 0.9}}, "bm25": {"q1": {"d1": 3.0}, "q2": {"d7": 1.5}}}
    result = Evaluation("toy", "val", 2, {}, runs=runs)
    paths = result.write_runs(tmp_path / "runs")
    assert sorted(p.name for p in paths) == ["bm25.run", "spicy_lentil.run"]
    lines = (tmp_path / "runs" / "spicy_lentil.run").read_text().splitlines()
    assert lines == ["q1 Q0 d1 1 0.9 spicy_lentil", "q1 Q0 d2 2 0.1 spicy_lentil"]
    assert read_run(tmp_path / "runs" / "bm25.run") == runs["bm25"]
