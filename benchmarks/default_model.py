"""How the shipped default model was trained: the command and its training log, into BENCHMARKS.md.

    .venv/bin/python benchmarks/default_model.py --run runs/scifact

Reads `training_log.jsonl` and `calibration.json` of the run folder that `spicy-lentil train` wrote
(the folder whose `config.json` and `model.safetensors` were copied into `spicy_lentil/default_model/`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import markdown_table, write_section

COMMAND = "spicy-lentil train ../shared/data/scifact --output runs/scifact --epochs 4"
METRICS = ("ndcg@10", "mrr@10", "slot_map")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default="runs/scifact", help="the training run folder")
    args = parser.parse_args()
    log = [json.loads(line) for line in (Path(args.run) / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    calibration = json.loads((Path(args.run) / "calibration.json").read_text(encoding="utf-8"))
    best = log[-1]["best_epoch"]
    rows = [[r["epoch"] if r["epoch"] != best else f"**{r['epoch']}** (kept)", f"{r['seconds']:.0f}", f"{r['loss']:.3f}",
             f"{r['ranking']:.3f}", f"{r['slot_ranking']:.3f}"] + [f"{r['validation'][m]:.4f}" for m in METRICS] for r in log]
    write_section("default-model", "\n".join([
        "## The shipped default model: how it was trained",
        "",
        f"`{COMMAND}` on SciFact `train` (never `val`), encoder frozen, then `config.json` and `model.safetensors` "
        "copied into `spicy_lentil/default_model/`. Validation after each epoch reranks the first stage's top 30 "
        "on `val`; the epoch with the best nDCG@10 is kept.",
        "",
        markdown_table(["epoch", "train s", "loss", "ranking", "slot ranking"] + [f"val {m}" for m in METRICS], rows),
        "",
        f"Training steps: {sum(r['seconds'] for r in log) / 60:.1f} min over {len(log)} epochs (the log's `seconds`, "
        "without mining and validation passes).",
        "",
        "Calibration (`calibration.json`): after training, Platt scaling of the kept model's logits was fitted on `val` "
        f"(first-stage top 30 per claim plus its relevant abstracts: {calibration['document_examples']} documents, "
        f"{calibration['slot_examples']} slots). It changes no ranking. Expected calibration error on those examples "
        "(in-sample, 10 bins):",
        "",
        markdown_table(["head", "scale", "shift", "ECE before", "ECE after"], [
            [head, f"{calibration[key][0]:.3f}", f"{calibration[key][1]:+.3f}", f"{calibration[key + '_ece'][0]:.4f}",
             f"{calibration[key + '_ece'][1]:.4f}"] for head, key in (("document", "document"), ("slot", "slot"))]),
    ]))


if __name__ == "__main__":
    main()
