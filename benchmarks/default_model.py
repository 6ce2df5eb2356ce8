"""The shipped default model: the command that trained it and the calibration it carries, into BENCHMARKS.md.

    .venv/bin/python -m benchmarks.default_model

Reads `spicy_lentil/default_model/calibration.json`, what `train` fitted after its last epoch (and
what a refit on the same model wrote, where one was made): the first-stage trust and the Platt
scaling of each head, with expected calibration error per dataset.
"""

from __future__ import annotations

import json

from benchmarks.common import markdown_table
from benchmarks.render import publish

SECTION = "default-model"
COMMAND = (
    "spicy-lentil train ../shared/data/scifact ../shared/data/wikiqa ../shared/data/selqa --output runs/mixture "
    "--tune-encoder --rank-documents scifact --epochs 2 --negatives 7 --validation-queries 100"
)
HEADS = ("document", "slot")


def read_calibration() -> dict:
    """The shipped model's calibration, as its `calibration.json` records it."""
    from spicy_lentil.checkpoint import DEFAULT_MODEL_DIR

    calibration = json.loads((DEFAULT_MODEL_DIR / "calibration.json").read_text(encoding="utf-8"))
    return {
        "training_command": COMMAND,
        "document_examples": calibration["document_examples"],
        "slot_examples": calibration["slot_examples"],
        "heads": {head: {"scale": calibration[head][0], "shift": calibration[head][1],
                         "ece_before": calibration[f"{head}_ece"][0], "ece_after": calibration[f"{head}_ece"][1],
                         "per_dataset": {name: e[head] for name, e in calibration["per_dataset"].items()}}
                  for head in HEADS},
        "first_stage_trust": calibration.get("first_stage_trust"),
    }


def render(result: dict) -> str:
    datasets = list(result["heads"]["slot"]["per_dataset"])
    heads = [[head, f"{h['scale']:.3f}", f"{h['shift']:+.3f}", f"{h['ece_before']:.4f}", f"{h['ece_after']:.4f}"]
             + [f"{h['per_dataset'][n]:.4f}" for n in datasets] for head, h in result["heads"].items()]
    trust = result["first_stage_trust"]
    lines = [
        "## The shipped default model: how it was trained and calibrated",
        "",
        f"`{result['training_command']}` on the `train` splits (never `val`), then `config.json`, "
        "`model.safetensors`, `encoder.safetensors` and `calibration.json` copied into `spicy_lentil/default_model/` "
        "(the README has the stages and their minutes). Its calibration, fitted on the three `val` splits after "
        "training:",
        "",
    ]
    if trust:
        before, after = trust["ndcg_at_10"]
        lines += [
            f"First-stage trust (fitted on {', '.join(trust['per_dataset'])}, the corpus whose ranking counts): "
            f"weight {trust['weight']:.3f} raw-logit units per unit of fusion below the query's best candidate; "
            f"nDCG@10 of the reranked first-stage top 30 {before:.4f} with the head alone, {after:.4f} with the trust.",
            "",
        ]
    lines += [
        f"Platt scaling of each head ({result['document_examples']} documents, {result['slot_examples']} slots: each "
        "query's first-stage top 3 plus its labelled documents; datasets weighted equally). It changes no ranking. "
        "Expected calibration error on those examples (in-sample, 10 bins), pooled and per dataset after scaling:",
        "",
        markdown_table(["head", "scale", "shift", "ECE before", "ECE after"] + [f"{n} ECE" for n in datasets], heads),
    ]
    return "\n".join(lines)


def main() -> None:
    publish(SECTION, __spec__.name, read_calibration())


if __name__ == "__main__":
    main()
