"""What a score means: the factored slot probability, its fit, and the shipped model's threshold of 0.5."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spicy_lentil import ANSWER_THRESHOLD, SpicyLentil
from spicy_lentil.network.model import slot_margins, slot_probability
from spicy_lentil.training.calibration import example_probabilities, fit_scaling, threshold_report
from spicy_lentil.training.calibration_examples import ScoredExample
from spicy_lentil.training.evaluation import read_answer_cases

EVERYDAY = Path(__file__).resolve().parents[1] / "data" / "everyday.jsonl"


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_a_factored_slot_score_is_the_document_probability_times_the_within_document_one():
    raw = torch.tensor([[2.0, 0.0, -1.0, 7.0]])
    mask = torch.tensor([[True, True, True, False]])  # the last slot is padding: never anyone's margin
    assert slot_margins(raw, mask)[0, :3].tolist() == [2.0, -2.0, -3.0]
    scaling, doc = torch.tensor([2.0, 1.0]), torch.tensor([1.5])
    scores = slot_probability(raw, mask, doc, scaling, True)[0, :3]
    assert scores.tolist() == pytest.approx([sigmoid(1.5) * sigmoid(2.0 * m + 1.0) for m in (2, -2, -3)], abs=1e-6)
    # Shifting every slot logit of a document leaves its scores alone: only the ranking inside it counts.
    assert slot_probability(raw - 5.0, mask, doc, scaling, True)[0, :3].tolist() == pytest.approx(scores.tolist())
    # A document's only slot answers exactly when the document does.
    alone = slot_probability(torch.tensor([[0.3]]), torch.tensor([[True]]), doc, scaling, True)
    assert alone.item() == pytest.approx(sigmoid(1.5), abs=1e-6)
    plain = slot_probability(raw, mask, doc, scaling, False)[0, :3]
    assert plain.tolist() == pytest.approx([sigmoid(2.0 * r + 1.0) for r in (2.0, 0.0, -1.0)], abs=1e-6)


def _examples(rng, level: float, documents: int = 400) -> list[ScoredExample]:
    """Relevant documents whose one answer stands 3 logits above the rest, at a domain-specific `level`,
    and as many non-relevant ones with a lower document logit."""
    out = []
    for _ in range(documents):
        logits = level + rng.normal(0.0, 0.5, 6)
        answer = int(rng.integers(6))
        logits[answer] += 3.0
        labels = np.eye(6, dtype=np.int64)[answer]
        out.append(ScoredExample("asked", True, float(rng.normal(2.0, 1.0)), logits, labels))
        out.append(ScoredExample("unrelated", False, float(rng.normal(-2.0, 1.0)), level + rng.normal(0, 0.5, 6),
                                 np.zeros(6, dtype=np.int64)))
    return out


def test_the_factored_fit_transfers_to_a_domain_whose_logits_sit_lower():
    rng = np.random.default_rng(0)
    fitted = {"a": _examples(rng, 0.0), "b": _examples(rng, 1.0)}
    held_out = _examples(rng, -4.0)  # the head scores everything in this domain 4 logits lower
    reports = {}
    for given_document in (True, False):
        slot, doc = fit_scaling(fitted, given_document)
        slot_p, slot_y, _, _ = example_probabilities(held_out, slot, doc, given_document)
        reports[given_document] = threshold_report(slot_p, slot_y)
    assert reports[True]["best_f1"] - reports[True]["f1_at_threshold"] <= 0.05
    assert reports[True]["ece"] <= 0.05
    assert reports[False]["f1_at_threshold"] < 0.5 * reports[False]["best_f1"]  # Platt on the level fails there


def test_the_shipped_model_keeps_what_it_scores_at_0_5_to_answers_on_everyday_text(lentil):
    cases = read_answer_cases(EVERYDAY)[::5]  # a fixed fifth of the set, every domain represented
    first = unrelated = kept_answers = kept_others = 0
    for case in cases:
        field = lentil.field(case.query, {"sentences": case.sentences})
        scores = [s.score for s in field.slots]
        first += int(np.argmax(scores)) in case.answer
        kept = [i for i, score in enumerate(scores) if score >= ANSWER_THRESHOLD]
        kept_answers += sum(i in case.answer for i in kept)
        kept_others += sum(i not in case.answer for i in kept)
        unrelated += lentil.field(case.query, {"sentences": case.unrelated}).score < ANSWER_THRESHOLD
    # Regression guards a little under the measured levels (13 of these 22 first; 5 answers and nothing else
    # kept at 0.5; no unrelated paragraph reaches 0.5; the shipped calibration was fitted on these cases among
    # the others, BENCHMARKS.md "What a score means" judges them held out), not issue 31's targets (answer
    # first in 18 of 20 and at least 0.5 in 16), which this model does not reach.
    assert len(cases) == 22
    assert first >= 12 and unrelated == 22, (first, unrelated)
    assert kept_answers >= 4 and kept_others <= kept_answers // 3, (kept_answers, kept_others)


def test_prune_at_0_5_keeps_the_answer_and_drops_an_unrelated_paragraph_whole(lentil):
    cases = {c.id: c for c in read_answer_cases(EVERYDAY)}
    for case_id in ("garden-01", "car-03", "software-error-02", "cooking-03"):
        case = cases[case_id]
        asked, unrelated = lentil.prune(
            case.query, [{"sentences": case.sentences}, {"sentences": case.unrelated}], threshold=ANSWER_THRESHOLD
        )
        assert [s.text for s in asked.kept] == [case.sentences[i] for i in case.answer], case_id
        assert unrelated.kept == [] and unrelated.compression_rate == 1.0, case_id


def test_save_and_reload_keep_scores_and_calibration(lentil, tmp_path):
    lentil.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["slot_given_document"] is True
    again = SpicyLentil.from_pretrained(tmp_path)
    for name in ("slot_calibration", "doc_calibration", "first_stage_trust"):
        assert torch.equal(again.model.get_buffer(name), lentil.model.get_buffer(name)), name
    query, document = "How long does a full charge take?", "The battery charges in four hours. It weighs 2 kg."
    field, reloaded = lentil.field(query, document), again.field(query, document)
    assert reloaded.score == pytest.approx(field.score, abs=1e-6)
    assert [s.score for s in reloaded.slots] == pytest.approx([s.score for s in field.slots], abs=1e-6)


def test_a_model_folder_from_before_the_factored_score_keeps_its_scores(lentil, tmp_path):
    lentil.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.pop("slot_given_document")
    (tmp_path / "config.json").write_text(json.dumps(config))
    legacy = SpicyLentil.from_pretrained(tmp_path)
    assert legacy.model.config.slot_given_document is False
    query, document = "How long does a full charge take?", "The battery charges in four hours. It weighs 2 kg."
    field = legacy.field(query, document)
    raw = SpicyLentil.from_pretrained(tmp_path)
    scale, shift = raw.model.slot_calibration.tolist()
    raw.model.slot_calibration.copy_(torch.tensor([1.0, 0.0]))
    logits = [math.log(s.score / (1 - s.score)) for s in raw.field(query, document).slots]
    assert [s.score for s in field.slots] == pytest.approx([sigmoid(scale * x + shift) for x in logits], abs=1e-5)


def test_answer_cases_are_read_or_refused_with_the_line_at_fault(tmp_path):
    from spicy_lentil.errors import DataError

    good = {"id": "a", "domain": "d", "query": "q?", "sentences": ["x.", "y."], "answer": [1], "unrelated": "b"}
    other = {**good, "id": "b", "sentences": ["z."], "answer": [0], "unrelated": "a"}
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in (good, other)) + "\n\n")
    cases = read_answer_cases(path)
    assert [(c.id, c.answer, c.unrelated) for c in cases] == [("a", [1], ["z."]), ("b", [0], ["x.", "y."])]
    for broken, message in (
        ("{oops", "cases.jsonl:2: not an answer case"),
        (json.dumps({**other, "answer": [1]}), "cases.jsonl:2: not an answer case"),  # no second sentence
        (json.dumps({**other, "sentences": "z."}), "cases.jsonl:2: not an answer case"),
        (json.dumps({k: v for k, v in other.items() if k != "query"}), "cases.jsonl:2: not an answer case"),
        (json.dumps({**other, "sentences": ["z.", " "]}), "cases.jsonl:2: not an answer case"),  # a blank sentence
        (json.dumps({**other, "answer": [True]}), "cases.jsonl:2: not an answer case"),
        (json.dumps({**other, "id": "a"}), "cases.jsonl:2: .*already the case of line 1"),
        (json.dumps({**other, "unrelated": "b"}), "cases.jsonl:2: .*its own unrelated paragraph"),
        (json.dumps({**other, "unrelated": "c"}), "cases.jsonl:2: unrelated case 'c' not in the file"),
    ):
        path.write_text(json.dumps(good) + "\n" + broken + "\n")
        with pytest.raises(DataError, match=message):
            read_answer_cases(path)
    with pytest.raises(DataError, match="answer cases cannot be read"):
        read_answer_cases(tmp_path / "missing.jsonl")
