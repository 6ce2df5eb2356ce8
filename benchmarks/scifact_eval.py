"""The acceptance run: `spicy-lentil eval --baselines` on SciFact val, twice.

    .venv/bin/python -m benchmarks.scifact_eval [--model DIR] [--fresh-index]

The command line is the front end under test here, so each evaluation is a fresh `python -m spicy_lentil eval`
process: the first builds (or, with an index already cached, reuses) the corpus index; the second shows what a
repeated evaluation spends on encoding. Metrics come from the second run's JSON (both runs score identically).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import CACHE_DIR, REPO_ROOT, SCIFACT_DIR, fill, markdown_table, verdict
from benchmarks.harness import ndcg_by_document_novelty, scifact_val_by_document_novelty
from benchmarks.render import publish

SECTION = "scifact-eval"
COLUMNS = ["ndcg@10", "recall@100", "mrr@10", "slot_map", "slot_mrr", "slot_auc"]
PARTS = ("all", "seen", "unseen")
TARGET_MARGIN, TARGET_SLOT_MARGIN = 0.02, 0.10


def run_eval(model: str | None, output: Path, runs: Path | None = None) -> dict:
    command = [sys.executable, "-m", "spicy_lentil", "eval", str(SCIFACT_DIR), "--split", "val", "--baselines",
               "--output", str(output), "--cache-dir", str(CACHE_DIR)]
    command += ["--model", model] if model else []
    command += ["--runs", str(runs)] if runs else []
    subprocess.run(command, check=True, cwd=REPO_ROOT)
    return json.loads(output.read_text())


def novelty(runs: Path) -> dict:
    """Claims per part of val, and nDCG@10 per part of each system's run (Spicy Lentil first)."""
    from spicy_lentil.training.evaluation import read_run

    parts = scifact_val_by_document_novelty()
    paths = sorted(runs.glob("*.run"), key=lambda p: (p.stem != "spicy_lentil", p.stem))
    return {"claims": {part: len(parts[part]) for part in PARTS},
            "ndcg@10": {path.stem: ndcg_by_document_novelty(read_run(path), parts) for path in paths}}


def summarise(first: dict, second: dict, build_seconds: float) -> dict:
    """The second run's metrics, its margins over the baselines, and its encoding time against the first run's."""
    ranking = {name: m for name, m in second["baselines"].items() if "ndcg@10" in m}  # not the sentence baseline
    best_name, best = max(ranking.items(), key=lambda kv: kv[1]["ndcg@10"])
    encode = lambda r: r["seconds"]["index"] + r["seconds"]["encode_queries"]  # noqa: E731
    first_encode = max(encode(first), build_seconds + first["seconds"]["encode_queries"])
    return {
        "queries": second["queries"], "slot_pairs": int(second["model"]["slot_pairs"]),
        "systems": {name: {c: m[c] for c in COLUMNS if c in m}
                    for name, m in {"spicy_lentil": second["model"], **second["baselines"]}.items()},
        "best_baseline": best_name, "margin": second["model"]["ndcg@10"] - best["ndcg@10"],
        "slot_margin": second["model"]["slot_map"] - second["baselines"]["dense"]["slot_map"],
        "build_seconds": build_seconds, "second_encode_seconds": encode(second),
        "encode_share": encode(second) / first_encode, "second_total_seconds": second["seconds"]["total"],
    }


def render(result: dict) -> str:
    rows = [[name] + [f"{m[c]:.4f}" if c in m else "-" for c in COLUMNS] for name, m in result["systems"].items()]
    return fill(SECTION, **result, table=markdown_table(["system"] + COLUMNS, rows),
                ok={"margin": verdict(result["margin"] >= TARGET_MARGIN),
                    "slot_margin": verdict(result["slot_margin"] >= TARGET_SLOT_MARGIN)},
                encode_percent=100 * result["encode_share"],
                novelty_table=markdown_table(["system", *PARTS], [[name] + [f"{ndcg[p]:.4f}" for p in PARTS] for
                                                                   name, ndcg in result["novelty"]["ndcg@10"].items()]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    parser.add_argument("--fresh-index", action="store_true", help="delete the cached SciFact index first")
    args = parser.parse_args()
    if args.fresh_index:
        for folder in CACHE_DIR.glob("index-scifact-*"):
            shutil.rmtree(folder)
    tmp = Path(tempfile.mkdtemp())
    first = run_eval(args.model, tmp / "first.json")
    second = run_eval(args.model, tmp / "second.json", tmp / "runs")
    build = json.loads(next(CACHE_DIR.glob("index-scifact-*/manifest.json")).read_text())["build_seconds"]
    publish(SECTION, __spec__.name, {**summarise(first, second, build), "novelty": novelty(tmp / "runs")})


if __name__ == "__main__":
    main()
