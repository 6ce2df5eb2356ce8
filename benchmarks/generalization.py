"""The generalization report: every system on every dataset's `val` and on the everyday set, in one matrix.

    .venv/bin/python -m benchmarks.generalization --model NAME=DIR:TRAINED[+TRAINED...][:FLAG,...] [--model ...]

Rows: BM25, MiniLM cosine, the fused first stage, the sentence bi-encoder (MiniLM tuned by the probe recipe), the tuned
encoder of `--encoder-of` by cosine alone, and each `--model` (TRAINED: the datasets it was trained on, so its cells
on the others are marked). Each row is kept in `cache/generalization/`, so that a rerun after adding a model computes
only the new row (`--fresh` recomputes everything); a `--model` folder that holds no model and has no kept row is
trained first, by the shipped default's recipe (`default_model.recipe`) on TRAINED with the FLAGs added
(`--tune-negatives=mined`, say).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.common import CACHE_DIR, DOMAINS, fill, log, markdown_table
from benchmarks.default_model import recipe
from benchmarks.harness import (
    System,
    calibrated_probabilities,
    cosine,
    cosine_scores,
    dataset,
    field_scores,
    index_of,
    matrix,
)
from benchmarks.render import publish

SECTION = "generalization"
RANKED = {"scifact"}  # WikiQA and SelQA: a question and its paragraph share a topic, so ranking a corpus is easy
ROWS_DIR = CACHE_DIR / "generalization"
EVERYDAY_METRICS = ("answer_first", "answer_above_threshold", "paragraph_above_threshold", "above_unrelated")
K_SWEEP = (1, 2, 4, 9)


def candidates(data) -> int:
    return 100 if data.name in RANKED else 1


def baseline_rows() -> dict[str, dict]:
    """BM25, cosine and fusion on every val split (one `evaluate --baselines` each) and the everyday set."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.corpus.first_stage import bm25_slot_scores
    from spicy_lentil.training.evaluation import evaluate

    carrier = SpicyLentil.new()  # the bundled encoder; its untrained head's own row is not reported
    table = matrix({
        "baselines": System(lambda data: evaluate(carrier, data, index_of(carrier, data), candidates(data),
                                                  baselines=True).baselines),
        "bm25": System(sentences=bm25_slot_scores), "dense": System(sentences=cosine_scores(carrier.encoder))})
    return {row: {**{name: {k: m[row][k] for k in ("slot_map", "slot_mrr", "ndcg@10") if k in m[row]}
                     for name, m in table["baselines"].items()}, **table.get(row, {})}
            for row in ("bm25", "dense", "fusion")}


def model_row(folder: str) -> dict:
    """One trained model on every val split (slot metrics, nDCG@10 where ranked, slot ECE) and the everyday set."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.arguments import TrainingArguments
    from spicy_lentil.training.calibration import expected_calibration_error
    from spicy_lentil.training.calibration_examples import calibration_examples
    from spicy_lentil.training.evaluation import evaluate

    lentil = SpicyLentil.from_pretrained(folder)

    def split(data) -> dict:
        index = index_of(lentil, data)
        metrics = evaluate(lentil, data, index, candidates(data), show_progress_bar=False).model
        row = {k: metrics[k] for k in ("slot_map", "slot_mrr", "ndcg@10")
               if k in metrics and (k != "ndcg@10" or data.name in RANKED)}
        # Judged on the examples calibration is defined on.
        examples = calibration_examples(lentil, data, index, TrainingArguments.calibration_candidates)
        probabilities, labels, _, _ = calibrated_probabilities(lentil, examples)
        return {**row, "ece": expected_calibration_error(probabilities, labels)}

    system = dataclasses.replace(field_scores(lentil, " ".join), split=split)
    return matrix({"model": system})["model"]


def k_sweep(folder: str, queries: int) -> dict[str, dict[str, float]]:
    """Slot MAP per dataset of one trained model with the gate's k set at inference, on the first `queries` val
    queries of each dataset: which k earns its place across the domains."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.training.evaluation import evaluate

    lentil = SpicyLentil.from_pretrained(folder)

    def at(k: int) -> System:
        def split(data) -> float:
            lentil.pathways_per_query = k
            return evaluate(lentil, data, index_of(lentil, data), 1, show_progress_bar=False).model["slot_map"]
        return System(split)
    return matrix({str(k): at(k) for k in K_SWEEP}, queries=queries, everyday=False)


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

    cosine_row = rows["dense"]
    return {
        "ece_candidates": TrainingArguments.calibration_candidates, "everyday_cases": cosine_row["everyday"]["cases"],
        "trained": {system: sorted(datasets) for system, datasets in trained.items()}, "systems": rows,
        "slot_map_over_cosine": {system: {n: rows[system][n]["slot_map"] - cosine_row[n]["slot_map"] for n in DOMAINS}
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
    return f"*{value:.3f}*" if unseen else f"{value:.3f}"


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
            unseen, metrics = seen is not None and name not in seen, row.get(name, {})
            keys = ("slot_map", "slot_mrr") + (("ndcg@10",) if name in RANKED else ()) + ("ece",)
            line += [cell(metrics.get(k), unseen) for k in keys]
        everyday = row.get("everyday", {})  # the first stage ranks documents, not sentences
        mark = "†" if everyday.get("cases", result["everyday_cases"]) != result["everyday_cases"] else ""
        table.append(line + [cell(everyday.get(k)) + (mark if everyday.get(k) is not None else "")
                             for k in EVERYDAY_METRICS])

    def deltas(by_row: dict, first: str) -> str:
        return markdown_table([first, *DOMAINS],
                              [[row, *(f"{d[n]:+.3f}" for n in DOMAINS)] for row, d in by_row.items()])
    sweep = result["k_sweep"]
    return fill(
        SECTION, **result, table=markdown_table(header, table), deltas=deltas(result["slot_map_over_cosine"], "system"),
        carried_rows=", ".join(f"{name} ({date})" for name, date in (result.get("carried") or {}).items()),
        earlier_cases=sorted({r.get("everyday", {}).get("cases") for r in result["systems"].values()}
                             - {result["everyday_cases"], None}),
        tuned=result.get("slot_map_over_tuned") and deltas(result["slot_map_over_tuned"], "system - encoder"),
        sweep=sweep and markdown_table(["k", *DOMAINS, "mean"], [[k, *(f"{v[n]:.3f}" for n in (*DOMAINS, "mean"))]
                                                                 for k, v in sweep["k"].items()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR:TRAINED+...")
    parser.add_argument("--encoder-of", default=None, metavar="NAME",
                        help="also rank by the cosine of this --model's tuned encoder alone")
    parser.add_argument("--k-sweep", default=None, metavar="NAME", help="also sweep the gate's k on this --model")
    parser.add_argument("--sweep-queries", type=int, default=150)
    parser.add_argument("--fresh", action="store_true", help="recompute every row")
    args = parser.parse_args()
    from spicy_lentil import SpicyLentil
    from spicy_lentil.network.config import BUNDLED_ENCODER
    from spicy_lentil.training.baselines import SentenceBiEncoder
    from spicy_lentil.training.recipe import train

    trained, folders = {}, {}
    for spec in args.model:
        name, _, rest = spec.partition("=")
        folder, _, rest = rest.partition(":")
        datasets, _, flags = rest.partition(":")
        folders[name], trained[name] = folder, set(filter(None, datasets.split("+")))
        row_kept = not args.fresh and (ROWS_DIR / f"model-{name}.json").is_file()
        if not row_kept and not (Path(folder) / "config.json").is_file():
            log(f"{folder} holds no model: training {name} on {datasets} by the default's recipe")
            datasets_in_order = [n for n in DOMAINS if n in trained[name]] + sorted(trained[name] - set(DOMAINS))
            train(recipe(Path(folder), CACHE_DIR, datasets_in_order, list(filter(None, flags.split(",")))), SpicyLentil)

    def cosine_row(encoder) -> dict:
        return matrix({"cosine": cosine(encoder)})["cosine"]

    def probe_bi_encoder():
        return SentenceBiEncoder.trained([dataset(n, "train") for n in DOMAINS], BUNDLED_ENCODER, CACHE_DIR).encoder

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
