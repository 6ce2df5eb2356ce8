"""Ablation on the training mixture with a shortened schedule: fusion, k, and each pathway removed in turn.

    .venv/bin/python -m benchmarks.ablation [--epochs 1] [--queries 200] [--only fusion|k|pathways] [--fresh]

Each variant is the training recipe (`training.recipe.train`) from seed 0 over the shipped default's tuned encoder,
read off the trainer's validation (`templates/ablation.md` says what is judged). Each finished variant is stored in
`cache/ablation-results.jsonl` with the settings it ran under; a rerun skips the variants stored under the same
settings, so a cut run resumes, and the result is saved from every stored row of those settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.common import CACHE_DIR, DOMAINS, SHARED_DATA, fill, markdown_table
from benchmarks.render import publish

SECTION = "ablation"
RESULTS = CACHE_DIR / "ablation-results.jsonl"
RANKED = "scifact"  # the one corpus whose ranking counts (as `train --rank-documents scifact`)
REFERENCE = "fusion=null_point"  # the default model's shape: null point, k = 4, nine pathways
NOISE = 0.01  # macro differences within this are noise with one seed and a short schedule
NEGATIVES = 7  # as the shipped default's training command


def variants(only: str | None) -> list[tuple[str, str, dict]]:
    from spicy_lentil.pathways import PATHWAY_NAMES

    table = [("fusion", f"fusion={f}", {"fusion": f})
             for f in ("null_point", "concat_linear", "learned_weights", "gated_unit")]
    table += [("k", f"k={k}", {"pathways_per_query": k}) for k in (1, 2, 9)]  # k=4 is fusion=null_point
    table += [("pathways", f"without {p}", {"pathways": [q for q in PATHWAY_NAMES if q != p]}) for p in PATHWAY_NAMES]
    return [v for v in table if only is None or v[0] == only]


def training_arguments(args: argparse.Namespace, output: str):
    from spicy_lentil.training.arguments import TrainingArguments

    return TrainingArguments(output=output, epochs=args.epochs, negatives=NEGATIVES, candidates=args.candidates,
                             validation_queries=args.queries, calibrate=False)


def run(group: str, name: str, overrides: dict, args: argparse.Namespace) -> dict:
    """Trains one variant by the recipe and reads its row off the training log's last (validated) epoch."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.network.checkpoint import DEFAULT_MODEL_DIR
    from spicy_lentil.network.config import SpicyLentilConfig
    from spicy_lentil.network.encoder import ENCODER_WEIGHTS_NAME
    from spicy_lentil.training.encoder_tuning import EncoderTuningArguments
    from spicy_lentil.training.recipe import Recipe, train

    started = time.perf_counter()
    config = dataclasses.replace(SpicyLentilConfig.load(DEFAULT_MODEL_DIR / "config.json"), **overrides)
    with tempfile.TemporaryDirectory() as output:
        # The default's tuned encoder, placed as a finished tuning that the recipe resumes from instead of tuning.
        shutil.copyfile(DEFAULT_MODEL_DIR / ENCODER_WEIGHTS_NAME, Path(output) / ENCODER_WEIGHTS_NAME)
        recipe = Recipe([str(SHARED_DATA / n) for n in DOMAINS], training_arguments(args, output), config,
                        rank_documents=[RANKED], tune_encoder=EncoderTuningArguments(), cache_dir=str(CACHE_DIR),
                        resume=True)
        train(recipe, SpicyLentil)
        record = json.loads((Path(output) / "training_log.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    validation = record["validation"]
    return {"group": group, "variant": name, **{f"{n}_slot_map": validation[n]["slot_map"] for n in DOMAINS},
            "ndcg@10": validation[RANKED]["ndcg@10"], "macro": record["selection"],
            "minutes": (time.perf_counter() - started) / 60}


def run_settings(args: argparse.Namespace) -> dict:
    """What a stored row must share with this run to stand beside its rows."""
    from spicy_lentil import SpicyLentil

    training = dataclasses.asdict(training_arguments(args, ""))
    training.pop("output")
    default = SpicyLentil.from_pretrained()
    # The encoder's digest too: a retrained default keeps its config but not its encoder.
    return {"datasets": list(DOMAINS), "training": training, "model": default.config.to_dict(),
            "encoder": default.encoder.weights_digest}


def stored_rows(settings: dict) -> list[dict]:
    """Rows stored under `settings`, the latest of each variant."""
    rows = {}
    for line in RESULTS.read_text(encoding="utf-8").splitlines() if RESULTS.is_file() else []:
        row = json.loads(line)
        if row.pop("settings", None) == settings:
            rows[row["variant"]] = row
    return list(rows.values())


def summarise(args: argparse.Namespace, settings: dict) -> dict:
    """Every stored variant of this run's settings in plan order, with its macro-average against the reference."""
    by_name = {r["variant"]: r for r in stored_rows(settings)}
    plan = [name for _, name, _ in variants(None)]
    base = by_name.get(REFERENCE)
    rows = [{**r, "vs_reference": r["macro"] - base["macro"] if base else None}
            for r in (by_name[name] for name in plan if name in by_name)]
    return {"epochs": args.epochs, "queries": args.queries, "candidates": args.candidates, "negatives": NEGATIVES,
            "complete": len(rows) == len(plan), "variants": rows}


def findings(rows: list[dict], base: dict) -> list[str]:
    """What the table says, in sentences: which variants moved the macro-average or one domain beyond noise."""
    others = [r for r in rows if r is not base]
    beyond = [r for r in others if abs(r["vs_reference"]) >= NOISE]
    lines = [f"- Macro-average: {len(others) - len(beyond)} of {len(others)} variants are within {NOISE} of the "
             "reference."]
    if beyond:
        lines.append("- Beyond that: " + ", ".join(f"{r['variant']} ({r['vs_reference']:+.4f})" for r in beyond) + ".")
    for metric, label in [*((f"{n}_slot_map", f"{n} slot MAP") for n in DOMAINS), ("ndcg@10", "SciFact nDCG@10")]:
        moved = [r for r in others if abs(r[metric] - base[metric]) >= NOISE]
        if moved:
            lines.append(f"- {label} (reference {base[metric]:.4f}) moved beyond {NOISE} in: "
                         + ", ".join(f"{r['variant']} ({r[metric] - base[metric]:+.4f})" for r in moved) + ".")
    return lines


def render(result: dict) -> str:
    rows = result["variants"]
    base = next((r for r in rows if r["variant"] == REFERENCE), None)
    table = [[r["group"], r["variant"], *(f"{r[f'{n}_slot_map']:.4f}" for n in DOMAINS), f"{r['ndcg@10']:.4f}",
              f"{r['macro']:.4f}", f"{r['vs_reference']:+.4f}" if base else "-", f"{r['minutes']:.1f}"] for r in rows]
    header = ["group", "variant", *(f"{n} slot MAP" for n in DOMAINS), "SciFact nDCG@10", "macro", "vs reference",
              "minutes"]
    return fill(SECTION, **result, noise=NOISE, table=markdown_table(header, table),
                incomplete="" if result["complete"] else
                " **Incomplete: the run was cut; the variants listed are those that finished.**",
                findings=base and "\n".join(findings(rows, base)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--queries", type=int, default=200, help="val queries judged per dataset")
    parser.add_argument("--candidates", type=int, default=30, help="first-stage documents reranked on SciFact val")
    parser.add_argument("--only", choices=("fusion", "k", "pathways"), default=None)
    parser.add_argument("--fresh", action="store_true", help="rerun variants already stored under the same settings")
    args = parser.parse_args()
    settings = run_settings(args)
    stored = set() if args.fresh else {r["variant"] for r in stored_rows(settings)}
    for group, name, overrides in variants(args.only):
        if name in stored:
            print(f"{name}: stored, skipped", flush=True)
            continue
        row = run(group, name, overrides, args)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with open(RESULTS, "a", encoding="utf-8") as handle:  # after each variant, so a cut run keeps its rows
            handle.write(json.dumps({**row, "settings": settings}) + "\n")
        print(json.dumps(row), flush=True)
        publish(SECTION, __spec__.name, summarise(args, settings))
    publish(SECTION, __spec__.name, summarise(args, settings))


if __name__ == "__main__":
    main()
