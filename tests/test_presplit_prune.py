"""Pre-split documents (one slot per given sentence, spans into the sentences joined by one space) and pruning
by threshold or budget, through the Python API and the CLI."""

import json

import pytest

from spicy_lentil.frontends.cli import main

QUERY = "How long does the battery take to charge?"
SENTENCES = ["Dr. Smith designed the V7 vacuum.", "A full charge takes about 4.5 hours.", "The dock mounts on a wall."]


def test_presplit_sentences_are_the_slots(lentil):
    field = lentil.field(QUERY, SENTENCES)
    assert [s.text for s in field.slots] == SENTENCES  # "Dr." does not split the first one
    joined = " ".join(SENTENCES)
    assert all(joined[s.start : s.end] == s.text for s in field.slots)
    as_dict = lentil.field(QUERY, {"sentences": ["  " + SENTENCES[0], *SENTENCES[1:]]})
    assert [s.start for s in as_dict.slots] == [s.start for s in field.slots]  # stripped before joining
    assert [s.score for s in as_dict.slots] == pytest.approx([s.score for s in field.slots], abs=1e-6)
    ranked = lentil.rank(QUERY, [["Cats purr.", "Dogs bark."], SENTENCES])
    assert ranked[0]["corpus_id"] == 1 and ranked[0]["text"] == joined


@pytest.mark.parametrize(
    "document, error",
    [
        (["ok", "  "], ValueError),
        (["ok", 3], TypeError),
        ({"sentences": "not a list"}, TypeError),
        ({"title": "no text"}, TypeError),
    ],
)
def test_bad_presplit_documents_are_refused(lentil, document, error):
    with pytest.raises(error):
        lentil.field(QUERY, document)


def test_prune_by_threshold_budget_and_both(lentil):
    documents = [SENTENCES, "Preheat the oven. Roast the vegetables for 40 minutes."]
    fields = lentil.fields(QUERY, documents)
    threshold = sorted(s.score for f in fields for s in f.slots)[-2]  # exactly the two best slots pass
    pruned = lentil.prune(QUERY, documents, threshold=threshold)
    kept = [(d, s.text) for d, p in enumerate(pruned) for s in p.kept]
    best = sorted(((d, s) for d, f in enumerate(fields) for s in f.slots), key=lambda x: -x[1].score)[:2]
    assert sorted(kept) == sorted((d, s.text) for d, s in best)
    for p, f in zip(pruned, fields):
        assert p.score == pytest.approx(f.score, abs=1e-6)
        assert p.text == " ".join(s.text for s in p.kept)
        assert p.compression_rate == pytest.approx(1 - p.kept_tokens / p.total_tokens)
    by_budget = lentil.prune(QUERY, documents, budget_tokens=12)
    assert 0 < sum(p.kept_tokens for p in by_budget) <= 12
    both = lentil.prune(QUERY, documents, threshold=threshold, budget_tokens=1)
    assert all(not p.kept for p in both) and all(p.compression_rate == 1.0 for p in both)
    compressed = lentil.compress(QUERY, documents, budget_tokens=None, threshold=threshold)
    assert [s.text for _, s in compressed.selected] == [s.text for p in pruned for s in p.kept]
    empty = lentil.prune(QUERY, [""], threshold=0.5)[0]
    assert empty.kept == [] and empty.compression_rate == 0.0 and empty.score == 0.0


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({}, ValueError),
        ({"threshold": -0.1}, ValueError),
        ({"threshold": "0.5"}, TypeError),
        ({"budget_tokens": 0}, ValueError),
    ],
)
def test_prune_refuses_bad_rules(lentil, kwargs, error):
    with pytest.raises(error):
        lentil.prune(QUERY, ["a"], **kwargs)


def test_cli_scores_presplit_rows_and_rejects_blank_sentences(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            [
                json.dumps({"_id": "a", "sentences": SENTENCES}),
                json.dumps({"_id": "b", "sentences": ["fine", " "]}),
                json.dumps({"_id": "c", "sentences": "text"}),
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    assert main(["score", "--query", QUERY, str(rows), "--out", str(out)]) == 1
    (result,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["text"] for s in result["slots"]] == SENTENCES
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejects] == [
        (2, "'sentences[1]' is empty"),
        (3, "'sentences' must be a list of strings"),
    ]
