"""Ablation on SciFact `val` with a shortened schedule: fusion, k, and each pathway removed in turn.

Every variant starts from the same seed, trains on `train` for `--epochs` epochs (no model
selection on val), then is evaluated once on `val` (first stage + rerank of `--candidates`).
The variants share one encoder, the corpus index and the mined training examples (all
independent of the head being trained).

    .venv/bin/python benchmarks/ablation.py [--epochs 1] [--candidates 30] [--only fusion|k|pathways]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from common import CACHE_DIR, SCIFACT_DIR, markdown_table, write_section

from pathways import PATHWAY_NAMES
from spicy_lentil import SpicyLentil, SpicyLentilConfig
from spicy_lentil.config import BUNDLED_ENCODER
from spicy_lentil.data import load_data
from spicy_lentil.encoder import Encoder
from spicy_lentil.evaluation import evaluate
from spicy_lentil.index import CorpusIndex
from spicy_lentil.model import SpicyLentilModel
from spicy_lentil.training import Trainer, TrainingArguments


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
    args = parser.parse_args()
    train = load_data(SCIFACT_DIR, "train")
    val = load_data(SCIFACT_DIR, "val")
    results = []
    encoder = Encoder(BUNDLED_ENCODER)
    index = examples = None
    plan = variants(args.only)
    for group, name, overrides in plan:
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
        results.append(row)
        print(json.dumps(row), flush=True)
        write_results(results, args, done=len(results) == len(plan))  # after each variant, so a cut run keeps its rows


def write_results(results: list[dict], args: argparse.Namespace, done: bool) -> None:
    base = next((r for r in results if r["variant"] == "fusion=null_point"), None)
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
    ]))


if __name__ == "__main__":
    main()
