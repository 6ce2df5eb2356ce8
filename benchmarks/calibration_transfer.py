"""What a score means off the domains it was fitted on: calibration left one domain out, the everyday set, and the
first-stage trust fitted on half the claims and judged on the other half.

    .venv/bin/python -m benchmarks.calibration_transfer [--model DIR] [--held-out-model DIR DATASET]

`--held-out-model` adds to the stored results a whole model trained and calibrated without DATASET, judged on it.
"""

from __future__ import annotations

import argparse

from benchmarks.common import DOMAINS, EVERYDAY, fill, markdown_table, stored_result, verdict
from benchmarks.harness import System, calibrated_probabilities, cosine_scores, dataset, index_of, matrix
from benchmarks.render import publish

SECTION = "calibration-transfer"
MODES = {"factored": True, "platt": False}  # slot_given_document
F1_GAP, ECE_LIMIT = 0.05, 0.05  # the targets for a held-out domain
TRUST_CANDIDATES = 30  # first-stage documents reranked per query, as the shipped fit uses


def head_reports(probabilities) -> dict:
    from spicy_lentil.training.calibration import threshold_report

    slot_p, slot_y, doc_p, doc_y = probabilities
    return {"slot": threshold_report(slot_p, slot_y), "document": threshold_report(doc_p, doc_y)}


def leave_one_out(per_split: dict) -> dict:
    """mode -> held-out dataset -> head reports, the scalings fitted on the other datasets and the everyday cases
    (as the shipped recipe fits them); "all" fitted on all."""
    from spicy_lentil.training.calibration import example_probabilities, fit_scaling

    out = {}
    for mode, given in MODES.items():
        out[mode] = {}
        for held in [*DOMAINS, "all"]:
            slot, doc = fit_scaling({n: e for n, e in per_split.items() if n != held}, given)
            judged = {n: per_split[n] for n in DOMAINS} if held == "all" else {held: per_split[held]}
            out[mode][held] = {n: {**head_reports(example_probabilities(e, slot, doc, given)), "slot_scaling": slot,
                                   "doc_scaling": doc} for n, e in judged.items()}
    return out


def everyday(per_split: dict, table: dict, given: bool) -> dict:
    """The everyday cases, each scored under scalings fitted on the `val` splits and the other half of the cases
    (even or odd positions in the file), then judged as `answer_case_metrics` judges a model; also unrelated
    paragraphs below 0.5, the F1 of sentences kept at 0.5 over both paragraphs, and the model's own encoder's
    cosine ranking the answer first."""
    import numpy as np

    from spicy_lentil.training.calibration import example_probabilities, fit_scaling, threshold_report
    from spicy_lentil.training.evaluation import answer_case_metrics, read_answer_cases

    cases, examples = read_answer_cases(EVERYDAY), per_split["everyday"]
    pairs = list(zip(examples[0::2], examples[1::2]))  # (asked, unrelated) per case, in file order
    scored, slot_p, slot_y = {}, [], []  # (query, sentences) -> (slot probabilities, paragraph probability)
    for half in (0, 1):
        fitted_on = {**{n: per_split[n] for n in DOMAINS}, "everyday": [e for p in pairs[1 - half::2] for e in p]}
        slot, doc = fit_scaling(fitted_on, given)
        for case, pair in zip(cases[half::2], pairs[half::2]):
            for sentences, example in zip((case.sentences, case.unrelated), pair):
                probabilities, labels, (paragraph,), _ = example_probabilities([example], slot, doc, given)
                scored[case.query, tuple(sentences)] = probabilities, paragraph
                slot_p.append(probabilities)
                slot_y.append(labels)
    metrics = answer_case_metrics(cases, lambda q, s: scored[q, tuple(s)][0], lambda q, s: scored[q, tuple(s)][1])
    return {**metrics, "cosine_answer_first": table["cosine"]["everyday"]["answer_first"],
            "unrelated_below_threshold": float(np.mean([scored[c.query, tuple(c.unrelated)][1] < 0.5 for c in cases])),
            "slot": threshold_report(np.concatenate(slot_p), np.concatenate(slot_y))}


def trust_halves(lentil, data, index) -> dict:
    """The first-stage trust fitted on one half of the claims (even or odd positions by id), nDCG@10 of the reranked
    search and of the first stage alone on the other half; both ways. The model's own trust is restored after."""
    from spicy_lentil.training.calibration import fit_first_stage_trust
    from spicy_lentil.training.data import query_subset
    from spicy_lentil.training.evaluation import evaluate

    def half(which: int):
        return query_subset(data, sorted(data.queries)[which::2])

    def judged(split, weight: float) -> dict:
        result = evaluate(lentil, split, index, TRUST_CANDIDATES, baselines=True, show_progress_bar=False)
        return {"weight": weight, "reranked": result.model["ndcg@10"], "fusion": result.baselines["fusion"]["ndcg@10"]}

    shipped = lentil.model.first_stage_trust.clone()
    out = {}
    try:
        for fitted, other in ((0, 1), (1, 0)):
            fit = fit_first_stage_trust(lentil, [(half(fitted), index)], TRUST_CANDIDATES)
            out[f"{fitted}->{other}"] = judged(half(other), fit.weight)
        lentil.model.first_stage_trust.copy_(shipped)
        out["shipped, all"] = judged(data, float(shipped))
    finally:
        lentil.model.first_stage_trust.copy_(shipped)
    return out


def measure(model: str | None) -> dict:
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.calibration_examples import answer_case_examples, calibration_examples
    from spicy_lentil.training.evaluation import read_answer_cases

    lentil = SpicyLentil.from_pretrained(model)
    examples = System(lambda data: calibration_examples(lentil, data, index_of(lentil, data),
                                                        TrainingArguments.calibration_candidates))
    table = matrix({"examples": examples, "cosine": System(sentences=cosine_scores(lentil.encoder))})
    per_split = {**table["examples"], "everyday": answer_case_examples(lentil, read_answer_cases(EVERYDAY))}
    scifact = dataset("scifact")
    return {
        "examples": {n: {k: sum(e.kind == k for e in ex) for k in ("asked", "related", "unrelated", "unanswerable")}
                     for n, ex in per_split.items()},
        "leave_one_out": leave_one_out(per_split),
        "everyday": everyday(per_split, table, lentil.model.config.slot_given_document),
        "trust_halves": trust_halves(lentil, scifact, index_of(lentil, scifact)),
    }


def held_out_model(folder: str, name: str) -> dict:
    """A whole model trained and calibrated without dataset `name`, on the documents the shipped model's first stage
    picks for `name`'s `val` questions, scored from their text with the model's own encoder."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.calibration_examples import example_documents, score_examples

    shipped, data = SpicyLentil.from_pretrained(), dataset(name)
    documents = example_documents(shipped, data, index_of(shipped, data), TrainingArguments.calibration_candidates)
    other = SpicyLentil.from_pretrained(folder)
    return {"folder": folder, "dataset": name,
            **head_reports(calibrated_probabilities(other, score_examples(other, data, documents)))}


def _pair(report: dict) -> str:
    return (f"{report['f1_at_threshold']:.3f} / {report['best_f1']:.3f} (at {report['best_threshold']:.2f})"
            f"; ECE {report['ece']:.3f}; at 0.5 precision {report['precision_at_threshold']:.2f}, "
            f"recall {report['recall_at_threshold']:.2f}")


def _passes(report: dict) -> bool:
    return report["best_f1"] - report["f1_at_threshold"] <= F1_GAP and report["ece"] <= ECE_LIMIT


def render(result: dict) -> str:
    rows = []
    for mode, by_held in result["leave_one_out"].items():
        for held, judged in by_held.items():
            fitted = "all" if held == "all" else " + ".join([*(n for n in DOMAINS if n != held), "everyday"])
            rows += [[mode, name, fitted, _pair(r["slot"]), _pair(r["document"]),
                      verdict(_passes(r["slot"])) if held != "all" else "(fitted on it)"] for name, r in judged.items()]
    ev, h = result["everyday"], result.get("held_out_model")
    ok = {"first": ev["answer_first"] >= 0.9 and ev["answer_first"] >= ev["cosine_answer_first"],
          "answer": ev["answer_above_threshold"] >= 0.8, "paragraph": ev["paragraph_above_threshold"] >= 0.8,
          "unrelated": ev["unrelated_below_threshold"] >= 0.95, "above": ev["above_unrelated"] >= 0.95}
    return fill(
        SECTION, **result, f1_gap=F1_GAP, ece_limit=ECE_LIMIT, trust_candidates=TRUST_CANDIDATES,
        counts="; ".join(f"{n}: " + ", ".join(f"{v} {k}" for k, v in c.items() if v)
                         for n, c in result["examples"].items()),
        table=markdown_table(["slot score", "judged on", "fitted on", "slot F1 at 0.5 / best (its threshold); ECE; "
                              "at 0.5", "document: the same", "target"], rows),
        main_run_line=h and "main_run" in result,
        held_out=h and markdown_table(
            ["judged on", "slot F1 at 0.5 / best; ECE", "document F1 at 0.5 / best; ECE", "target"],
            [[h["dataset"], _pair(h["slot"]), _pair(h["document"]), verdict(_passes(h["slot"]))]]),
        ok={k: verdict(v) for k, v in ok.items()}, everyday_slot=_pair(ev["slot"]),
        trust=markdown_table(["fitted -> judged", "trust weight", "first stage nDCG@10", "reranked nDCG@10",
                              "not below"], [[way, f"{t['weight']:.2f}", f"{t['fusion']:.4f}", f"{t['reranked']:.4f}",
                                              verdict(t["reranked"] >= t["fusion"])]
                                             for way, t in result["trust_halves"].items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--held-out-model", nargs=2, metavar=("DIR", "DATASET"),
                        help="only add (to the stored results) a model trained and calibrated without DATASET")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.held_out_model:
        result = stored_result(SECTION)
        result["held_out_model"] = held_out_model(*args.held_out_model)
    else:
        result = measure(args.model)
    publish(SECTION, __spec__.name, result, write=not args.no_write)


if __name__ == "__main__":
    main()
