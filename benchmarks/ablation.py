"""Ablation on SciFact `val` with a shortened schedule: fusion, k, and each pathway removed in turn.

Every variant starts from the same seed, trains on `train` for `--epochs` epochs (no model
selection on val), then is evaluated once on `val` (first stage + rerank of `--candidates`).
The variants share one encoder, the corpus index and the mined training examples (all
independent of the head being trained). Each finished variant is stored in
`cache/ablation-results.jsonl` with the settings it ran under (schedule, training arguments,
model defaults); a rerun skips the variants already stored under the same settings, so a cut run
resumes, and the result is saved from every stored row of those settings.

    .venv/bin/python -m benchmarks.ablation [--epochs 1] [--candidates 30] [--only fusion|k|pathways] [--fresh]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time

from benchmarks.common import CACHE_DIR, SCIFACT_DIR, markdown_table
from benchmarks.render import publish

SECTION = "ablation"
RESULTS = CACHE_DIR / "ablation-results.jsonl"
REFERENCE = "fusion=null_point"  # the default model's shape: null point, k = 4, nine pathways
NOISE = 0.01  # nDCG@10 differences within this are noise with one seed and a short schedule


def variants(only: str | None) -> list[tuple[str, str, dict]]:
    from spicy_lentil.pathways import PATHWAY_NAMES

    table = [("fusion", f"fusion={f}", {"fusion": f})
             for f in ("null_point", "concat_linear", "learned_weights", "gated_unit")]
    table += [("k", f"k={k}", {"pathways_per_query": k}) for k in (1, 2, 9)]  # k=4 is fusion=null_point
    table += [("pathways", f"without {p}", {"pathways": [q for q in PATHWAY_NAMES if q != p]}) for p in PATHWAY_NAMES]
    return [v for v in table if only is None or v[0] == only]


class Workbench:
    """What the variants share: the data, one encoder, the corpus index and the mined training examples."""

    def __init__(self) -> None:
        from spicy_lentil.config import BUNDLED_ENCODER
        from spicy_lentil.data import load_data
        from spicy_lentil.encoder import Encoder

        self.train = load_data(SCIFACT_DIR, "train")
        self.val = load_data(SCIFACT_DIR, "val")
        self.encoder = Encoder(BUNDLED_ENCODER)
        self.index = self.examples = None

    def run(self, group: str, name: str, overrides: dict, epochs: int, candidates: int) -> dict:
        """Trains one variant from seed 0 and evaluates it on val; returns its row."""
        import torch

        from spicy_lentil import SpicyLentil, SpicyLentilConfig
        from spicy_lentil.evaluation import evaluate
        from spicy_lentil.index import CorpusIndex
        from spicy_lentil.model import SpicyLentilModel
        from spicy_lentil.training import Trainer, TrainingArguments, TrainingSet

        started = time.perf_counter()
        config = SpicyLentilConfig(**overrides, embedding_dim=self.encoder.dim, vocab_size=self.encoder.vocab_size)
        torch.manual_seed(0)
        lentil = SpicyLentil(SpicyLentilModel(config), self.encoder)
        self.index = self.index or CorpusIndex.for_corpus(self.train.corpus_path, self.encoder, lentil.slotter,
                                                          CACHE_DIR)
        with tempfile.TemporaryDirectory() as output:
            trainer = Trainer(lentil, TrainingArguments(output=output, epochs=epochs),
                              [TrainingSet(self.train, self.index)], self.examples)
            self.examples = trainer.examples
            trainer.train()
        metrics = evaluate(lentil, self.val, self.index, candidates, show_progress_bar=False).model
        return {"group": group, "variant": name, **{k: metrics[k] for k in ("ndcg@10", "recall@100", "slot_map")},
                "minutes": (time.perf_counter() - started) / 60}


def run_settings(args: argparse.Namespace) -> dict:
    """What a stored row must share with this run to stand beside its rows."""
    from spicy_lentil import SpicyLentilConfig
    from spicy_lentil.training import TrainingArguments

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


def store(row: dict, settings: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a", encoding="utf-8") as handle:  # after each variant, so a cut run keeps its rows
        handle.write(json.dumps({**row, "settings": settings}) + "\n")


def summarise(args: argparse.Namespace) -> dict:
    """Every stored variant of this run's settings in plan order, with its nDCG@10 against the reference."""
    by_name = {r["variant"]: r for r in stored_rows(run_settings(args))}
    plan = [name for _, name, _ in variants(None)]
    base = by_name.get(REFERENCE)
    rows = [{"group": r["group"], "variant": r["variant"], "ndcg@10": r["ndcg@10"],
             "vs_reference": r["ndcg@10"] - base["ndcg@10"] if base else None, "slot_map": r["slot_map"],
             "minutes": r["minutes"]} for r in (by_name[name] for name in plan if name in by_name)]
    return {"epochs": args.epochs, "candidates": args.candidates, "complete": len(rows) == len(plan), "variants": rows}


def findings(rows: list[dict], base: dict) -> list[str]:
    """What the table says, in sentences: which variants moved nDCG@10 or slot MAP beyond noise."""
    others = [r for r in rows if r is not base]
    beyond = [r for r in others if abs(r["vs_reference"]) >= NOISE]
    best_slot = max(rows, key=lambda r: r["slot_map"])
    lines = [f"- nDCG@10: {len(others) - len(beyond)} of {len(others)} variants are within 0.01 of the reference."]
    if beyond:
        lines.append("- Beyond that: " + ", ".join(f"{r['variant']} ({r['vs_reference']:+.4f})" for r in beyond) + ".")
    lines.append(f"- Slot MAP: the reference reaches {base['slot_map']:.4f}; the highest is {best_slot['variant']} "
                 f"({best_slot['slot_map']:.4f}), the lowest {min(rows, key=lambda r: r['slot_map'])['variant']}.")
    return lines


def render(result: dict) -> str:
    rows = result["variants"]
    base = next((r for r in rows if r["variant"] == REFERENCE), None)
    table = [[r["group"], r["variant"], f"{r['ndcg@10']:.4f}", f"{r['vs_reference']:+.4f}" if base else "-",
              f"{r['slot_map']:.4f}", f"{r['minutes']:.1f}"] for r in rows]
    return "\n".join([
        "## Ablation (SciFact val, shortened schedule)",
        "",
        f"Each variant: seed 0, {result['epochs']} epoch(s) on `train`, no model selection, then one `val` evaluation "
        f"(first stage + rerank of {result['candidates']} candidates). The reference row is the default model's shape "
        "(null point, k = 4, nine pathways). With one seed and a short schedule, differences of about 0.01 "
        "are within noise." + ("" if result["complete"] else
                               " **Incomplete: the run was cut; the variants listed are those that finished.**"),
        "",
        markdown_table(["group", "variant", "nDCG@10", "vs reference", "slot MAP", "minutes"], table),
        *([""] + findings(rows, base) if base else []),
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=30, help="first-stage documents reranked on val")
    parser.add_argument("--only", choices=("fusion", "k", "pathways"), default=None)
    parser.add_argument("--fresh", action="store_true", help="rerun variants already stored under the same settings")
    args = parser.parse_args()
    settings = run_settings(args)
    stored = set() if args.fresh else {r["variant"] for r in stored_rows(settings)}
    bench = Workbench()
    for group, name, overrides in variants(args.only):
        if name in stored:
            print(f"{name}: stored, skipped", flush=True)
            continue
        row = bench.run(group, name, overrides, args.epochs, args.candidates)
        store(row, settings)
        print(json.dumps(row), flush=True)
        publish(SECTION, __spec__.name, summarise(args))
    publish(SECTION, __spec__.name, summarise(args))


if __name__ == "__main__":
    main()
