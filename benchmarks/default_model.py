"""The shipped default model: the recipe that trained it, how long it takes, and its calibration.

    .venv/bin/python -m benchmarks.default_model [--calibration-only]

Runs the recipe of `COMMAND` (`training.recipe.train`, what the command calls) end to end in this process, into a
scratch folder with an empty cache, timed per stage; then reads the shipped model's `calibration.json`. The run's own
model is thrown away; its kept epoch's validation is shown beside the shipped one's calibration.
"""

from __future__ import annotations

import argparse
import json
import shlex
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmarks.common import (
    DOMAINS,
    REPO_ROOT,
    SHARED_DATA,
    contention_text,
    fill,
    markdown_table,
    stored_result,
    verdict,
)
from benchmarks.harness import contention_probe
from benchmarks.render import publish

SECTION = "default-model"
COMMAND = (
    "spicy-lentil train ../shared/data/scifact ../shared/data/wikiqa ../shared/data/selqa --output runs/mixture "
    "--tune-encoder --rank-documents scifact --epochs 2 --negatives 7 --validation-queries 100 "
    "--calibration-cases data/everyday.jsonl"
)
HEADS = ("document", "slot")
BUDGET_MINUTES = 90  # the multi-domain issue's limit for training the default end to end on 2 cores


def recipe(output: Path, cache: Path, datasets: Sequence[str] = DOMAINS, flags: Sequence[str] = ()):
    """`COMMAND` as the recipe it runs (read by the command line's own parser), into `output` with the cache in
    `cache`; the shared data paths and the repository's `data/` are resolved from the repository root. With
    `datasets`, it trains on those shared datasets instead (SciFact's corpus ranking only where SciFact is one of
    them), and `flags` are appended to the command's (a later flag wins)."""
    from spicy_lentil.frontends.cli import build_parser
    from spicy_lentil.frontends.commands import recipe_from_args

    def resolved(argument: str) -> str:
        return str(REPO_ROOT / argument) if argument.startswith("data/") else argument

    arguments = [a for a in COMMAND.split()[1:] if not a.startswith("../shared/")]
    if "scifact" not in datasets:
        at = arguments.index("--rank-documents")
        del arguments[at: at + 2]
    arguments[1:1] = [str(SHARED_DATA / name) for name in datasets]
    return recipe_from_args(build_parser().parse_args(
        [*map(resolved, arguments), *flags, "--output", str(output), "--cache-dir", str(cache)]))


def largest_difference(path: Path, shipped: Path) -> float | None:
    """The largest absolute difference between two weights files' tensors; None where their tensor names differ."""
    from safetensors.torch import load_file

    ours, theirs = load_file(str(path)), load_file(str(shipped))
    if ours.keys() != theirs.keys():
        return None
    return max((ours[k].float() - theirs[k].float()).abs().max().item() for k in ours)


def reproduce() -> dict:
    """Runs the recipe from nothing (a scratch output and cache folder) and times its stages, in seconds.

    Stages are read off what the run leaves: the tuned encoder's file time, the indexes' own `build_seconds`, the
    epochs' logged seconds and the calibration file's time; `other` is the rest (loading data, mining negatives,
    validation between epochs).
    """
    from spicy_lentil import SpicyLentil
    from spicy_lentil.network.checkpoint import DEFAULT_MODEL_DIR
    from spicy_lentil.training.recipe import train

    load_before = contention_probe()
    with tempfile.TemporaryDirectory(prefix="default-model-") as scratch:
        output, cache = Path(scratch) / "mixture", Path(scratch) / "cache"
        started = time.time()
        train(recipe(output, cache), SpicyLentil)
        total = time.time() - started
        log = [json.loads(line) for line in (output / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
        calibration = json.loads((output / "calibration.json").read_text(encoding="utf-8"))
        stages = {
            "encoder tuning": (output / "encoder.safetensors").stat().st_mtime - started,
            "indexes": sum(json.loads(m.read_text(encoding="utf-8"))["build_seconds"]
                           for m in cache.glob("index-*/manifest.json")),
            "head epochs": sum(epoch["seconds"] for epoch in log),
            "calibration": (output / "calibration.json").stat().st_mtime
            - (output / "training_log.jsonl").stat().st_mtime,
        }
        difference = {name: largest_difference(output / name, DEFAULT_MODEL_DIR / name)
                      for name in ("encoder.safetensors", "model.safetensors")}
    stages["other"] = total - sum(stages.values())
    kept = next(epoch for epoch in log if epoch["epoch"] == log[-1]["best_epoch"])
    return {"total_seconds": total, "stages": stages, "load": [load_before, contention_probe()],
            "largest_difference": difference, "kept_epoch": kept["epoch"], "validation": kept["validation"],
            "first_stage_trust": calibration["first_stage_trust"]["weight"],
            "slot_platt": calibration["slot"], "document_platt": calibration["document"]}


def read_calibration() -> dict:
    """The shipped model's calibration, as its `calibration.json` records it."""
    from spicy_lentil.network.checkpoint import DEFAULT_MODEL_DIR

    calibration = json.loads((DEFAULT_MODEL_DIR / "calibration.json").read_text(encoding="utf-8"))
    return {
        "training_command": COMMAND,
        "document_examples": calibration["document_examples"],
        "slot_examples": calibration["slot_examples"],
        "heads": {head: {"scale": calibration[head][0], "shift": calibration[head][1],
                         "ece_before": calibration[f"{head}_ece"][0], "ece_after": calibration[f"{head}_ece"][1],
                         "per_dataset": {name: e[head]["ece"] for name, e in calibration["per_dataset"].items()}}
                  for head in HEADS},
        "first_stage_trust": calibration.get("first_stage_trust"),
    }


def sameness(difference: float | None) -> str:
    if difference is None:
        return "holds other tensors than"
    return "holds the same tensors as" if difference == 0 else f"differs (largest difference {difference:.3g}) from"


def render(result: dict) -> str:
    datasets = list(result["heads"]["slot"]["per_dataset"])
    heads = [[head, f"{h['scale']:.3f}", f"{h['shift']:+.3f}", f"{h['ece_before']:.4f}", f"{h['ece_after']:.4f}"]
             + [f"{h['per_dataset'][n]:.4f}" for n in datasets] for head, h in result["heads"].items()]
    run, trust = result["reproduction"], result["first_stage_trust"]
    arguments = shlex.split(result["training_command"])
    return fill(
        SECTION, **result, minutes=run["total_seconds"] / 60, budget=BUDGET_MINUTES,
        ok=verdict(run["total_seconds"] / 60 <= BUDGET_MINUTES),
        stages=markdown_table(["stage", "minutes"], [[name, f"{sec / 60:.1f}"] for name, sec in run["stages"].items()]),
        load_before=contention_text(run["load"][0]), load_after=contention_text(run["load"][1]),
        validated=arguments[arguments.index("--validation-queries") + 1],
        validation=", ".join(f"{name} " + " / ".join(f"{metric} {value:.3f}" for metric, value in metrics.items()
                                                     if metric in ("slot_map", "ndcg@10"))
                             for name, metrics in run["validation"].items()),
        sameness=" ".join(f"Its `{name}` {sameness(value)} the shipped one's."
                          for name, value in run["largest_difference"].items()),
        trust_on=trust and ", ".join(trust["per_dataset"]),
        heads_table=markdown_table(
            ["head", "scale", "shift", "ECE before", "ECE after", *(f"{n} ECE" for n in datasets)], heads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calibration-only", action="store_true",
                        help="only read the shipped model's calibration.json again (after a recalibration in place); "
                             "the stored reproduction run and its command are kept")
    if parser.parse_args().calibration_only:
        stored = stored_result(SECTION)
        result = {**stored, **read_calibration(), "training_command": stored["training_command"]}
    else:
        result = {**read_calibration(), "reproduction": reproduce()}
    publish(SECTION, __spec__.name, result)


if __name__ == "__main__":
    main()
