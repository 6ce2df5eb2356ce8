"""How the shipped default model was trained: the command and its training log, into BENCHMARKS.md.

    .venv/bin/python -m benchmarks.default_model --run runs/scifact

Reads `training_log.jsonl` and `calibration.json` of the run folder that `spicy-lentil train` wrote
(the folder whose `config.json` and `model.safetensors` were copied into `spicy_lentil/default_model/`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.common import markdown_table
from benchmarks.render import publish

SECTION = "default-model"
COMMAND = "spicy-lentil train ../shared/data/scifact --output runs/scifact --epochs 4"
METRICS = ("ndcg@10", "mrr@10", "slot_map")
HEADS = ("document", "slot")


def read_run(folder: Path) -> dict:
    """The epochs of the training log, the kept epoch, and the calibration fitted after training."""
    log = [json.loads(line) for line in (folder / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    calibration = json.loads((folder / "calibration.json").read_text(encoding="utf-8"))
    return {
        "epochs": [{k: r[k] for k in ("epoch", "seconds", "loss", "ranking", "slot_ranking")}
                   | {m: r["validation"][m] for m in METRICS} for r in log],
        "best_epoch": log[-1]["best_epoch"],
        "training_minutes": sum(r["seconds"] for r in log) / 60,
        "calibration": {
            "document_examples": calibration["document_examples"], "slot_examples": calibration["slot_examples"],
            "heads": {head: {"scale": calibration[head][0], "shift": calibration[head][1],
                             "ece_before": calibration[f"{head}_ece"][0], "ece_after": calibration[f"{head}_ece"][1]}
                      for head in HEADS},
        },
    }


def render(result: dict) -> str:
    epochs = [[r["epoch"] if r["epoch"] != result["best_epoch"] else f"**{r['epoch']}** (kept)", f"{r['seconds']:.0f}",
               f"{r['loss']:.3f}", f"{r['ranking']:.3f}", f"{r['slot_ranking']:.3f}"] + [f"{r[m]:.4f}" for m in METRICS]
              for r in result["epochs"]]
    calibration = result["calibration"]
    heads = [[head, f"{h['scale']:.3f}", f"{h['shift']:+.3f}", f"{h['ece_before']:.4f}", f"{h['ece_after']:.4f}"]
             for head, h in calibration["heads"].items()]
    return "\n".join([
        "## The shipped default model: how it was trained",
        "",
        f"`{COMMAND}` on SciFact `train` (never `val`), encoder frozen, then `config.json` and `model.safetensors` "
        "copied into `spicy_lentil/default_model/`. Validation after each epoch reranks the first stage's top 30 "
        "on `val`; the epoch with the best nDCG@10 is kept.",
        "",
        markdown_table(["epoch", "train s", "loss", "ranking", "slot ranking"] + [f"val {m}" for m in METRICS], epochs),
        "",
        f"Training steps: {result['training_minutes']:.1f} min over {len(result['epochs'])} epochs (the log's "
        "`seconds`, without mining and validation passes).",
        "",
        "Calibration (`calibration.json`): after training, Platt scaling of the kept model's logits was fitted on "
        "`val` (first-stage top 30 per claim plus its relevant abstracts: "
        f"{calibration['document_examples']} documents, {calibration['slot_examples']} slots). It changes no ranking. "
        "Expected calibration error on those examples (in-sample, 10 bins):",
        "",
        markdown_table(["head", "scale", "shift", "ECE before", "ECE after"], heads),
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=Path("runs/scifact"), help="the training run folder")
    args = parser.parse_args()
    publish(SECTION, __spec__.name, read_run(args.run))


if __name__ == "__main__":
    main()
