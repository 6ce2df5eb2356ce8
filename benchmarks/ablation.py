"""Ablation on SciFact `val` with a shortened schedule: fusion, k, and each pathway removed in turn.

Every variant starts from the same seed, trains on `train` for `--epochs` epochs (no model
selection on val), then is evaluated once on `val` (first stage + rerank of `--candidates`).
The variants share one encoder, the corpus index and the mined training examples (all
independent of the head being trained). Each finished variant is stored in
`cache/ablation-results.jsonl` with the settings it ran under (schedule, training arguments,
model defaults); a rerun skips the variants already stored under the same settings, so a cut run
resumes, and the section is written from every stored row of those settings.

    .venv/bin/python benchmarks/ablation.py [--epochs 1] [--candidates 30] [--only fusion|k|pathways] [--fresh]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

import torch
from common import CACHE_DIR, SCIFACT_DIR, markdown_table, write_section

from spicy_lentil.pathways import PATHWAY_NAMES
from spicy_lentil import SpicyLentil, SpicyLentilConfig
from spicy_lentil.config import BUNDLED_ENCODER
from spicy_lentil.data import load_data
from spicy_lentil.encoder import Encoder
from spicy_lentil.evaluation import evaluate
from spicy_lentil.index import CorpusIndex
from spicy_lentil.model import SpicyLentilModel
from spicy_lentil.training import Trainer, TrainingArguments

RESULTS = CACHE_DIR / "ablation-results.jsonl"


def variants(only: str | None) -> list[tuple[str, str, dict]]:
    table = [("fusion", f"fusion={f}", {"fusion": f}) for f in ("null_point", "concat_linear", "learned_weights", "gated_unit")]
    table += [("k", f"k={k}", {"pathways_per_query": k}) for k in (1, 2, 9)]  # k=4 is fusion=null_point
    table += [("pathways", f"without {p}", {"pathways": [q for q in PATHWAY_NAMES if q != p]}) for p in PATHWAY_NAMES]
    return [v for v in table if only is None or v[0] == only]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=30, help="first-stage documents reranked on val")
    parser.add_argument("--only", choices=("fusion", "k", "pathways"), default=None)
    parser.add_argument("--fresh", action="store_true", help="rerun variants already stored under the same settings")
    args = parser.parse_args()
    train = load_data(SCIFACT_DIR, "train")
    val = load_data(SCIFACT_DIR, "val")
    settings = run_settings(args)
    stored = {} if args.fresh else {r["variant"]: r for r in stored_rows(settings)}
    encoder = Encoder(BUNDLED_ENCODER)
    index = examples = None
    for group, name, overrides in variants(args.only):
        if name in stored:
            print(f"{name}: stored, skipped", flush=True)
            continue
        started = time.perf_counter()
        config = SpicyLentilConfig(**overrides, embedding_dim=encoder.dim, vocab_size=encoder.vocab_size)
        torch.manual_seed(0)
        lentil = SpicyLentil(SpicyLentilModel(config), encoder)
        index = index or CorpusIndex.for_corpus(train.corpus_path, encoder, lentil.slotter, CACHE_DIR)
        with tempfile.TemporaryDirectory() as output:
            trainer = Trainer(lentil, TrainingArguments(output=output, epochs=args.epochs), train, index, None, examples)
            examples = trainer.examples
            trainer.train()
        metrics = evaluate(lentil, val, index, args.candidates, show_progress_bar=False).model
        row = {"group": group, "variant": name, **{k: metrics[k] for k in ("ndcg@10", "recall@100", "slot_map")},
               "minutes": (time.perf_counter() - started) / 60}
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a", encoding="utf-8") as handle:  # after each variant, so a cut run keeps its rows
            handle.write(json.dumps({**row, "settings": settings}) + "\n")
        print(json.dumps(row), flush=True)
        write_results(args)
    write_results(args)


def run_settings(args: argparse.Namespace) -> dict:
    """What a stored row must share with this run to stand beside its rows."""
    training = dataclasses.asdict(TrainingArguments(output="", epochs=args.epochs))
    training.pop("output")
    return {"candidates": args.candidates, "training": training, "model": SpicyLentilConfig().to_dict()}


def stored_rows(settings: dict) -> list[dict]:
    """Rows stored under `settings`, the latest of each variant."""
    if not RESULTS.is_file():
        return []
    rows = {}
    for line in RESULTS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row.pop("settings", None) == settings:
            rows[row["variant"]] = row
    return list(rows.values())


def write_results(args: argparse.Namespace) -> None:
    by_name = {r["variant"]: r for r in stored_rows(run_settings(args))}
    plan = [name for _, name, _ in variants(None)]
    results = [by_name[name] for name in plan if name in by_name]
    done = len(results) == len(plan)
    base = by_name.get("fusion=null_point")
    rows = [[r["group"], r["variant"], f"{r['ndcg@10']:.4f}",
             f"{r['ndcg@10'] - base['ndcg@10']:+.4f}" if base else "-", f"{r['slot_map']:.4f}", f"{r['minutes']:.1f}"]
            for r in results]
    write_section("ablation", "\n".join([
        "## Ablation (SciFact val, shortened schedule)",
        "",
        f"Each variant: seed 0, {args.epochs} epoch(s) on `train`, no model selection, then one `val` evaluation "
        f"(first stage + rerank of {args.candidates} candidates). The reference row is the default model's shape "
        "(null point, k = 4, nine pathways). With one seed and a short schedule, differences of about 0.01 "
        "are within noise." + ("" if done else " **Incomplete: the run was cut; the variants listed are those that finished.**"),
        "",
        markdown_table(["group", "variant", "nDCG@10", "vs reference", "slot MAP", "minutes"], rows),
        *([""] + findings(results, base) if base else []),
    ]))


def findings(results: list[dict], base: dict) -> list[str]:
    """What the table says, in sentences: which variants moved nDCG@10 or slot MAP beyond noise."""
    others = [r for r in results if r is not base]
    beyond = [r for r in others if abs(r["ndcg@10"] - base["ndcg@10"]) >= 0.01]
    best_slot = max(results, key=lambda r: r["slot_map"])
    lines = [f"- nDCG@10: {len(others) - len(beyond)} of {len(others)} variants are within 0.01 of the reference."]
    if beyond:
        lines.append("- Beyond that: " + ", ".join(f"{r['variant']} ({r['ndcg@10'] - base['ndcg@10']:+.4f})" for r in beyond) + ".")
    lines.append(f"- Slot MAP: the reference reaches {base['slot_map']:.4f}; the highest is {best_slot['variant']} "
                 f"({best_slot['slot_map']:.4f}), the lowest {min(results, key=lambda r: r['slot_map'])['variant']}.")
    return lines


if __name__ == "__main__":
    main()
