"""What a score means off the domains it was fitted on: calibration left one domain out, the everyday set,
and the first-stage trust fitted on half the claims and judged on the other half, into BENCHMARKS.md.

    .venv/bin/python -m benchmarks.calibration_transfer [--model DIR] [--held-out-model DIR DATASET]

Examples are the documents a user meets with each `val` question (`calibration_examples.example_documents`:
the asked document, a related one the first stage finds that does not answer, an unrelated one, and
WikiQA's unanswerable paragraphs), each scored alone. For each dataset X the scalings are fitted on
the other two and judged on X: F1 of the sentences kept at 0.5 against the best threshold's F1, and
ECE, for the factored slot score (the shipped meaning) and for plain Platt scaling of the slot logit.
`--held-out-model` adds to the stored results a whole model trained and calibrated without DATASET,
judged on it.
"""

from __future__ import annotations

import argparse

from benchmarks.common import CACHE_DIR, DOMAINS, EVERYDAY, SHARED_DATA, cosine_scores, markdown_table, verdict
from benchmarks.render import publish

SECTION = "calibration-transfer"
MODES = {"factored": True, "platt": False}  # slot_given_document
F1_GAP, ECE_LIMIT = 0.05, 0.05  # the targets for a held-out domain
TRUST_CANDIDATES = 30  # first-stage documents reranked per query, as the shipped fit uses


def head_reports(examples, slot_scaling, doc_scaling, given_document: bool) -> dict:
    from spicy_lentil.training.calibration import example_probabilities, threshold_report

    slot_p, slot_y, doc_p, doc_y = example_probabilities(examples, slot_scaling, doc_scaling, given_document)
    return {"slot": threshold_report(slot_p, slot_y), "document": threshold_report(doc_p, doc_y)}


def leave_one_out(per_split: dict) -> dict:
    """mode -> held-out dataset -> head reports, the scalings fitted on the other datasets; "all" fitted on all."""
    from spicy_lentil.training.calibration import fit_scaling

    out = {}
    for mode, given in MODES.items():
        out[mode] = {}
        for held in [*per_split, "all"]:
            fitted = {n: e for n, e in per_split.items() if n != held}
            slot, doc = fit_scaling(fitted, given)
            judged = per_split if held == "all" else {held: per_split[held]}
            out[mode][held] = {n: {**head_reports(e, slot, doc, given), "slot_scaling": slot, "doc_scaling": doc}
                               for n, e in judged.items()}
    return out


def everyday(lentil) -> dict:
    """The everyday set under the model as loaded: answer metrics, unrelated paragraphs kept below 0.5, the
    F1 of sentences kept at 0.5 over both paragraphs of every case, and its own encoder's cosine."""
    import numpy as np

    from spicy_lentil.training.calibration import threshold_report
    from spicy_lentil.training.evaluation import answer_case_metrics, read_answer_cases

    cases = read_answer_cases(EVERYDAY)
    fields = {}

    def field(query, sentences):
        key = (query, tuple(sentences))
        if key not in fields:
            fields[key] = lentil.field(query, {"sentences": list(sentences)})
        return fields[key]

    metrics = answer_case_metrics(cases, lambda q, s: [x.score for x in field(q, s).slots],
                                  lambda q, s: field(q, s).score)
    metrics["unrelated_below_threshold"] = float(np.mean([field(c.query, c.unrelated).score < 0.5 for c in cases]))
    scores, labels = [], []
    for c in cases:
        for sentences in (c.sentences, c.unrelated):
            scores += [s.score for s in field(c.query, sentences).slots]
        labels += [int(i in c.answer) for i in range(len(c.sentences))] + [0] * len(c.unrelated)
    metrics["slot"] = threshold_report(np.array(scores), np.array(labels))
    metrics["cosine_answer_first"] = answer_case_metrics(cases, cosine_scores(lentil.encoder))["answer_first"]
    return metrics


def query_half(data, half: int):
    """The split's queries at even (0) or odd (1) positions by id, with their judgements."""
    from spicy_lentil.training.data import query_subset

    return query_subset(data, sorted(data.queries)[half::2])


def trust_halves(lentil, data, index) -> dict:
    """The first-stage trust fitted on one half of the claims, nDCG@10 of the reranked search and of the
    first stage alone on the other half; both ways. The model's own trust is restored after."""
    from spicy_lentil.training.calibration import fit_first_stage_trust
    from spicy_lentil.training.evaluation import evaluate

    shipped = lentil.model.first_stage_trust.clone()
    out = {}
    try:
        for fitted, judged in ((0, 1), (1, 0)):
            fit = fit_first_stage_trust(lentil, [(query_half(data, fitted), index)], TRUST_CANDIDATES)
            result = evaluate(lentil, query_half(data, judged), index, TRUST_CANDIDATES, baselines=True,
                              show_progress_bar=False)
            out[f"{fitted}->{judged}"] = {"weight": fit.weight, "reranked": result.model["ndcg@10"],
                                          "fusion": result.baselines["fusion"]["ndcg@10"]}
        lentil.model.first_stage_trust.copy_(shipped)
        result = evaluate(lentil, data, index, TRUST_CANDIDATES, baselines=True, show_progress_bar=False)
        out["shipped, all"] = {"weight": float(shipped), "reranked": result.model["ndcg@10"],
                               "fusion": result.baselines["fusion"]["ndcg@10"]}
    finally:
        lentil.model.first_stage_trust.copy_(shipped)
    return out


def val_split(lentil, name: str):
    """A dataset's `val` split and its corpus index over `lentil`'s encoder (cached)."""
    from spicy_lentil.corpus.builder import cached_index
    from spicy_lentil.training.data import load_data

    val = load_data(SHARED_DATA / name, "val")
    return val, cached_index(val.corpus_path, lentil.encoder, lentil.slotter, CACHE_DIR)


def measure(model: str | None) -> dict:
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.calibration_examples import calibration_examples

    lentil = SpicyLentil.from_pretrained(model)
    splits = {name: val_split(lentil, name) for name in DOMAINS}
    per_split = {name: calibration_examples(lentil, *split, TrainingArguments.calibration_candidates)
                 for name, split in splits.items()}
    return {
        "examples": {n: {k: sum(e.kind == k for e in ex) for k in ("asked", "related", "unrelated", "unanswerable")}
                     for n, ex in per_split.items()},
        "leave_one_out": leave_one_out(per_split),
        "everyday": everyday(lentil),
        "trust_halves": trust_halves(lentil, *splits["scifact"]),
    }


def held_out_model(folder: str, name: str) -> dict:
    """A whole model trained and calibrated without dataset `name`, on the documents the shipped model's
    first stage picks for `name`'s `val` questions, scored from their text with the model's own encoder."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.calibration_examples import example_documents, score_examples

    shipped = SpicyLentil.from_pretrained()
    val, index = val_split(shipped, name)
    documents = example_documents(shipped, val, index, TrainingArguments.calibration_candidates)
    other = SpicyLentil.from_pretrained(folder)
    model = other.model
    examples = score_examples(other, val, documents)
    return {"folder": folder, "dataset": name,
            **head_reports(examples, model.slot_calibration.tolist(), model.doc_calibration.tolist(),
                           model.config.slot_given_document)}


def _pair(report: dict) -> str:
    return (f"{report['f1_at_threshold']:.3f} / {report['best_f1']:.3f} (at {report['best_threshold']:.2f})"
            f"; ECE {report['ece']:.3f}; at 0.5 precision {report['precision_at_threshold']:.2f}, "
            f"recall {report['recall_at_threshold']:.2f}")


def _passes(report: dict) -> bool:
    return report["best_f1"] - report["f1_at_threshold"] <= F1_GAP and report["ece"] <= ECE_LIMIT


def render(result: dict) -> str:
    loo = result["leave_one_out"]
    header = ["slot score", "judged on", "fitted on", "slot F1 at 0.5 / best (its threshold); ECE; at 0.5",
              "document: the same", "target"]
    rows = []
    for mode, by_held in loo.items():
        for held, judged in by_held.items():
            for name, reports in judged.items():
                fitted = "all three" if held == "all" else " + ".join(n for n in DOMAINS if n != held)
                target = verdict(_passes(reports["slot"])) if held != "all" else "(fitted on it)"
                rows.append([mode, name, fitted, _pair(reports["slot"]), _pair(reports["document"]), target])
    ev = result["everyday"]
    everyday_rows = [
        ["answer ranked first", f"{ev['answer_first']:.3f}",
         f">= 0.90 and its encoder's cosine {ev['cosine_answer_first']:.3f}",
         verdict(ev["answer_first"] >= 0.9 and ev["answer_first"] >= ev["cosine_answer_first"])],
        ["answer >= 0.5", f"{ev['answer_above_threshold']:.3f}", ">= 0.80",
         verdict(ev["answer_above_threshold"] >= 0.8)],
        ["asked paragraph >= 0.5", f"{ev['paragraph_above_threshold']:.3f}", ">= 0.80",
         verdict(ev["paragraph_above_threshold"] >= 0.8)],
        ["unrelated paragraph < 0.5", f"{ev['unrelated_below_threshold']:.3f}", ">= 0.95",
         verdict(ev["unrelated_below_threshold"] >= 0.95)],
        ["asked paragraph above the unrelated one", f"{ev['above_unrelated']:.3f}", ">= 0.95",
         verdict(ev["above_unrelated"] >= 0.95)],
        ["sentences kept at 0.5 (both paragraphs): F1 / best (its threshold); ECE; at 0.5", _pair(ev["slot"]),
         "", ""],
    ]
    trust_rows = [[way, f"{t['weight']:.2f}", f"{t['fusion']:.4f}", f"{t['reranked']:.4f}",
                   verdict(t["reranked"] >= t["fusion"])] for way, t in result["trust_halves"].items()]
    counts = "; ".join(f"{n}: " + ", ".join(f"{v} {k}" for k, v in c.items() if v)
                       for n, c in result["examples"].items())
    out = [
        "## What a score means: calibration on domains it was not fitted on",
        "",
        "A slot score is the probability that the sentence answers the query among the documents a user hands "
        "over with it; `factored` (shipped) computes it as P(the document answers) x P(this sentence answers | "
        "the document does), the second factor read from the slot's logit margin over the rest of its document; "
        "`platt` is one Platt scaling of the slot logit, fitted on the same examples. Examples per `val` "
        f"question, each scored alone: {counts}. Each held-out row is fitted on the other two datasets only; "
        f"target: F1 at 0.5 within {F1_GAP} of the best threshold's F1, and ECE <= {ECE_LIMIT}.",
        "",
        markdown_table(header, rows),
        "",
    ]
    if "held_out_model" in result:
        h = result["held_out_model"]
        if "main_run" in result:
            out += [f"(Every other table was measured on {result['main_run']['date']} by "
                    f"`{result['main_run']['command']}`; this one by the command above.)", ""]
        out += [
            f"A whole model trained and calibrated without {h['dataset']} (`{h['folder']}`), judged on its `val` "
            "examples (scored from text with its own encoder):",
            "",
            markdown_table(["judged on", "slot F1 at 0.5 / best; ECE", "document F1 at 0.5 / best; ECE", "target"],
                           [[h["dataset"], _pair(h["slot"]), _pair(h["document"]), verdict(_passes(h["slot"]))]]),
            "",
        ]
    out += [
        f"Everyday set ({ev['cases']} hand-written cases from domains no training set covers, never fitted on), "
        "the shipped model as loaded:",
        "",
        markdown_table(["measure", "model", "against", "target"], everyday_rows),
        "",
        "First-stage trust fitted on half the SciFact `val` claims (even or odd positions by id) and judged by "
        f"nDCG@10 on the other half, reranking the first stage's top {TRUST_CANDIDATES}; the last row is the "
        "shipped trust (fitted on all of `val`) on all of it:",
        "",
        markdown_table(["fitted -> judged", "trust weight", "first stage nDCG@10", "reranked nDCG@10",
                        "not below"], trust_rows),
    ]
    return "\n".join(out)


def main() -> None:
    import json

    from benchmarks.common import RESULTS_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--held-out-model", nargs=2, metavar=("DIR", "DATASET"),
                        help="only add (to the stored results) a model trained and calibrated without DATASET")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if args.held_out_model:
        stored = json.loads((RESULTS_DIR / f"{SECTION}.json").read_text(encoding="utf-8"))
        result = {k: v for k, v in stored.items() if k not in ("section", "script", "date", "machine", "command")}
        result.setdefault("main_run", {k: stored[k] for k in ("date", "command")})
        result["held_out_model"] = held_out_model(*args.held_out_model)
    else:
        result = measure(args.model)
    if args.no_write:
        print(render(result))
    else:
        publish(SECTION, __spec__.name, result)


if __name__ == "__main__":
    main()
