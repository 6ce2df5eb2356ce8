"""The generalization report: every system on every dataset's `val` and on the everyday set, in one run.

    .venv/bin/python -m benchmarks.generalization --model NAME=DIR:TRAINED[+TRAINED...] [--model ...]

Rows: BM25, MiniLM cosine, the fused first stage, the sentence-level fine-tuned bi-encoder (MiniLM
tuned by the issue's probe recipe: a random in-document negative per triplet), the tuned encoder of
`--encoder-of` by cosine alone (what that model's pathways have to add to), and each
`--model` (a folder written by `spicy-lentil train`; TRAINED names the datasets it was trained on,
so the cells where it meets a domain it never saw are marked). Columns per dataset: slot MAP and
MRR over the labelled (question, document) pairs, nDCG@10 over the whole corpus where ranking it is
meaningful (SciFact), and the expected calibration error of the slot scores; then the everyday set
(`data/everyday.jsonl`, domains no training set covers). Each row's results are kept in
`cache/generalization/` so that a rerun after adding a model computes only the new row
(`--fresh` recomputes everything).
"""

from __future__ import annotations

import argparse
import json
import statistics
from datetime import datetime, timezone

from benchmarks.common import CACHE_DIR, DOMAINS, EVERYDAY, SHARED_DATA, cosine_row, cosine_scores, markdown_table
from benchmarks.render import publish

SECTION = "generalization"
RANKED = {"scifact"}  # WikiQA and SelQA: a question and its paragraph share a topic, so ranking a corpus is easy
ROWS_DIR = CACHE_DIR / "generalization"
EVERYDAY_METRICS = ("answer_first", "answer_above_threshold", "paragraph_above_threshold", "above_unrelated")
K_SWEEP = (1, 2, 4, 9)


def baseline_rows() -> dict[str, dict]:
    """BM25, cosine and fusion on every val split and the everyday set."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.corpus.builder import cached_index
    from spicy_lentil.corpus.first_stage import bm25_slot_scores
    from spicy_lentil.training.data import load_data
    from spicy_lentil.training.evaluation import answer_case_metrics, evaluate, read_answer_cases

    carrier = SpicyLentil.new()  # the bundled encoder; its untrained head's own row is not reported
    rows: dict[str, dict] = {name: {} for name in ("bm25", "dense", "fusion")}
    for name in DOMAINS:
        val = load_data(SHARED_DATA / name, "val")
        index = cached_index(val.corpus_path, carrier.encoder, carrier.slotter, CACHE_DIR)
        candidates = 100 if name in RANKED else 1
        result = evaluate(carrier, val, index, candidates, baselines=True)
        for row in rows:
            metrics = result.baselines[row]
            rows[row][name] = {k: metrics[k] for k in ("slot_map", "slot_mrr", "ndcg@10") if k in metrics}
    cases = read_answer_cases(EVERYDAY)
    rows["bm25"]["everyday"] = answer_case_metrics(cases, bm25_slot_scores)
    rows["dense"]["everyday"] = answer_case_metrics(cases, cosine_scores(carrier.encoder))
    return rows


def model_row(folder: str) -> dict:
    """One trained model on every val split (slot metrics, nDCG@10 where ranked, slot ECE) and the everyday set."""

    from spicy_lentil import SpicyLentil
    from spicy_lentil.corpus.builder import cached_index
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.calibration import example_probabilities, expected_calibration_error
    from spicy_lentil.training.calibration_examples import calibration_examples
    from spicy_lentil.training.data import load_data
    from spicy_lentil.training.evaluation import answer_case_metrics, evaluate, read_answer_cases

    lentil = SpicyLentil.from_pretrained(folder)
    row = {}
    for name in DOMAINS:
        val = load_data(SHARED_DATA / name, "val")
        index = cached_index(val.corpus_path, lentil.encoder, lentil.slotter, CACHE_DIR)
        metrics = evaluate(lentil, val, index, 100 if name in RANKED else 1, show_progress_bar=False).model
        row[name] = {k: metrics[k] for k in ("slot_map", "slot_mrr", "ndcg@10")
                     if k in metrics and (k != "ndcg@10" or name in RANKED)}
        # Judged on the examples calibration is defined on.
        examples = calibration_examples(lentil, val, index, TrainingArguments.calibration_candidates)
        model = lentil.model
        probabilities, labels, _, _ = example_probabilities(
            examples, model.slot_calibration.tolist(), model.doc_calibration.tolist(), model.config.slot_given_document
        )
        row[name]["ece"] = expected_calibration_error(probabilities, labels)
    cache: dict = {}

    def field(query, sentences):
        key = (query, tuple(sentences))
        if key not in cache:
            cache[key] = lentil.field(query, " ".join(sentences))
        return cache[key]

    row["everyday"] = answer_case_metrics(read_answer_cases(EVERYDAY),
                                          lambda q, s: [x.score for x in field(q, s).slots],
                                          lambda q, s: field(q, s).score)
    return row


def k_sweep(folder: str, queries: int) -> dict[str, dict[str, float]]:
    """Slot MAP per dataset of one trained model with the gate's k set at inference, on the first `queries`
    val queries of each dataset: which k earns its place across the domains."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.corpus.builder import cached_index
    from spicy_lentil.training.data import first_queries, load_data
    from spicy_lentil.training.evaluation import evaluate

    lentil = SpicyLentil.from_pretrained(folder)
    sweep = {}
    for k in K_SWEEP:
        lentil.pathways_per_query = k
        sweep[str(k)] = {}
        for name in DOMAINS:
            val = first_queries(load_data(SHARED_DATA / name, "val"), queries)
            index = cached_index(val.corpus_path, lentil.encoder, lentil.slotter, CACHE_DIR)
            sweep[str(k)][name] = evaluate(lentil, val, index, 1, show_progress_bar=False).model["slot_map"]
    return sweep


def cached(name: str, fresh: bool, compute, carried: dict[str, str]) -> dict:
    """The row stored under `name`, computed when absent; a row read back is noted in `carried` with its date."""
    path = ROWS_DIR / f"{name}.json"
    if path.is_file() and not fresh:
        carried[name] = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return json.loads(path.read_text(encoding="utf-8"))
    row = compute()
    ROWS_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    return row


def summarise(rows: dict[str, dict], trained: dict[str, set[str]], sweep: dict | None, sweep_queries: int) -> dict:
    """The rows with what the section adds to them: each model's slot MAP against cosine, the sweep's means."""
    from spicy_lentil.training.arguments import TrainingArguments

    cosine = rows["dense"]
    return {
        "ece_candidates": TrainingArguments.calibration_candidates, "everyday_cases": cosine["everyday"]["cases"],
        "trained": {system: sorted(datasets) for system, datasets in trained.items()}, "systems": rows,
        "slot_map_over_cosine": {system: {n: rows[system][n]["slot_map"] - cosine[n]["slot_map"] for n in DOMAINS}
                                 for system in trained},
        "slot_map_over_tuned": {f"{system} - {tuned}": {n: rows[system][n]["slot_map"] - rows[tuned][n]["slot_map"]
                                                        for n in DOMAINS}
                                for system in trained
                                for tuned in ("bi_encoder_sentences", f"{system} encoder") if tuned in rows},
        "k_sweep": {"queries": sweep_queries,
                    "k": {k: {**v, "mean": statistics.mean(v[n] for n in DOMAINS)} for k, v in sweep.items()}}
        if sweep else None,
    }


def cell(value, unseen: bool = False) -> str:
    if value is None:
        return "-"
    text = f"{value:.3f}"
    return f"*{text}*" if unseen else text


def render(result: dict) -> str:
    header = ["system", "trained on"]
    for name in DOMAINS:
        header += [f"{name} MAP", f"{name} MRR"] + (["nDCG@10"] if name in RANKED else []) + ["ECE"]
    header += ["everyday: answer 1st", "answer >= 0.5", "paragraph >= 0.5", "above unrelated"]
    table = []
    for system, row in result["systems"].items():
        seen = result["trained"].get(system)
        line = [system, "+".join(seen) if seen else "-"]
        for name in DOMAINS:
            unseen = seen is not None and name not in seen
            metrics = row.get(name, {})
            line += [cell(metrics.get("slot_map"), unseen), cell(metrics.get("slot_mrr"), unseen)]
            if name in RANKED:
                line.append(cell(metrics.get("ndcg@10"), unseen))
            line.append(cell(metrics.get("ece"), unseen))
        everyday = row.get("everyday", {})  # the first stage ranks documents, not sentences
        line += [cell(everyday.get(k)) for k in EVERYDAY_METRICS]
        table.append(line)
    deltas = [[system] + [f"{delta[n]:+.3f}" for n in DOMAINS]
              for system, delta in result["slot_map_over_cosine"].items()]
    sweep = result["k_sweep"]
    return "\n\n".join([
        "## Generalization: every system on every domain",
        "Slot MAP / MRR rank the sentences of each labelled (question, document) pair of `val` (never trained on); "
        "nDCG@10 ranks SciFact's whole corpus (first stage top 100, then rerank); ECE is the expected calibration "
        f"error of slot scores on each query's first-stage top {result['ece_candidates']} plus its labelled documents. "
        f"Everyday: {result['everyday_cases']} hand-written questions over paragraphs from domains no training set "
        "covers (`data/everyday.jsonl`), each also asked of an unrelated paragraph; BM25 and cosine scores are not "
        "probabilities, so their threshold columns are empty and 'above unrelated' compares best sentences. "
        "*Italic* cells: a model meeting a domain it was not trained on (the zero-shot evidence).",
        markdown_table(header, table),
    ] + ([
        "Rows read back from an earlier run of this script (`cache/generalization/`), not measured in this one: "
        + ", ".join(f"{name} ({date})" for name, date in result["carried"].items()) + ".",
    ] if result.get("carried") else []) + [
        "Slot MAP against plain MiniLM cosine, per domain:",
        markdown_table(["system", *DOMAINS], deltas),
    ] + ([
        "Slot MAP against tuned encoders by cosine alone: the sentence bi-encoder baseline (the probe recipe, "
        "random negatives; the encoder that `--tune-encoder` with its default recipe gives a model, so the "
        "default reads it) and the `--encoder-of` model's own encoder. Where a model reads the encoder, the "
        "difference is what its pathways add to it:",
        markdown_table(["system - encoder", *DOMAINS],
                       [[pair] + [f"{delta[n]:+.3f}" for n in DOMAINS]
                        for pair, delta in result["slot_map_over_tuned"].items()]),
    ] if result.get("slot_map_over_tuned") else []) + ([
        f"The gate's k at inference (the model was trained with k = 4), slot MAP on the first {sweep['queries']} val "
        "queries of each dataset:",
        markdown_table(["k", *DOMAINS, "mean"],
                       [[k, *(f"{v[n]:.3f}" for n in (*DOMAINS, "mean"))] for k, v in sweep["k"].items()]),
    ] if sweep else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR:TRAINED+...")
    parser.add_argument("--encoder-of", default=None, metavar="NAME",
                        help="also rank by the cosine of this --model's tuned encoder alone")
    parser.add_argument("--k-sweep", default=None, metavar="NAME", help="also sweep the gate's k on this --model")
    parser.add_argument("--sweep-queries", type=int, default=150)
    parser.add_argument("--fresh", action="store_true", help="recompute every row")
    args = parser.parse_args()
    trained, folders = {}, {}
    for spec in args.model:
        name, _, rest = spec.partition("=")
        folder, _, datasets = rest.partition(":")
        folders[name], trained[name] = folder, set(filter(None, datasets.split("+")))
    from spicy_lentil import SpicyLentil
    from spicy_lentil.network.config import BUNDLED_ENCODER
    from spicy_lentil.training.baselines import SentenceBiEncoder
    from spicy_lentil.training.data import load_data

    def probe_bi_encoder():
        trains = [load_data(SHARED_DATA / name, "train") for name in DOMAINS]
        return SentenceBiEncoder.trained(trains, BUNDLED_ENCODER, CACHE_DIR).encoder

    carried: dict[str, str] = {}
    rows = cached("baselines", args.fresh, baseline_rows, carried)
    rows["bi_encoder_sentences"] = cached("bi-encoder-sentences", args.fresh, lambda: cosine_row(probe_bi_encoder()),
                                          carried)
    if args.encoder_of:
        rows[f"{args.encoder_of} encoder"] = cached(
            f"encoder-{args.encoder_of}", args.fresh,
            lambda: cosine_row(SpicyLentil.from_pretrained(folders[args.encoder_of]).encoder), carried)
    for name, folder in folders.items():
        rows[name] = cached(f"model-{name}", args.fresh, lambda folder=folder: model_row(folder), carried)
    sweep = None
    if args.k_sweep:
        sweep = cached(f"k-sweep-{args.k_sweep}", args.fresh,
                       lambda: k_sweep(folders[args.k_sweep], args.sweep_queries), carried)
    publish(SECTION, __spec__.name, {**summarise(rows, trained, sweep, args.sweep_queries), "carried": carried})


if __name__ == "__main__":
    main()
