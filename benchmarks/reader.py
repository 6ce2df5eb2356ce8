"""The reader: the shipped model with and without a cross-encoder reader (`network/reader.py`) joined to its head.

    .venv/bin/python -m benchmarks.reader [--docs N] [--repeats N]

The reader is trained by `reader_training` on the three `train` splits (the shipped recipe's arguments) and joined
to the shipped model's head, weights and calibration refitted as the recipe fits them (`fit_calibration` on the
three `val` splits and the everyday cases, SciFact's first-stage trust over 30 candidates). Both are kept in
`cache/reader-model/`, so a rerun only measures. Both models are judged alike: slot MAP over every labelled
(question, document) pair of each `val`, the everyday set (under calibrations that both saw every everyday case),
the calibration's own report, and the time `fields` takes per document on SciFact abstracts, alternating.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics

from benchmarks.common import CACHE_DIR, DOMAINS, EVERYDAY, SCIFACT_DIR, fill, log, markdown_table, read_jsonl
from benchmarks.harness import System, alternate, dataset, field_scores, index_of, matrix, sentence_scores
from benchmarks.render import publish

SECTION = "reader"
MODEL_DIR = CACHE_DIR / "reader-model"
TRUST_CANDIDATES = 30  # as the shipped recipe fits the trust
ROWS = ("shipped", "reader")


def reader_model(shipped_dir):
    """The shipped model with a trained reader, calibrated; built into `MODEL_DIR` once."""
    from spicy_lentil import SpicyLentil
    from spicy_lentil.network.checkpoint import CONFIG_NAME
    from spicy_lentil.network.config import BUNDLED_ENCODER, SpicyLentilConfig
    from spicy_lentil.network.reader import READER_WEIGHTS_NAME
    from spicy_lentil.training.calibration import fit_calibration
    from spicy_lentil.training.evaluation import read_answer_cases
    from spicy_lentil.training.reader_training import ReaderTrainingArguments, train_and_save_reader

    if (MODEL_DIR / "calibration.json").is_file():
        return SpicyLentil.from_pretrained(MODEL_DIR)
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "encoder.safetensors"):
        shutil.copyfile(shipped_dir / name, MODEL_DIR / name)
    config = SpicyLentilConfig.load(MODEL_DIR / CONFIG_NAME)
    config.reader, config.reader_weights = BUNDLED_ENCODER, READER_WEIGHTS_NAME
    if not (MODEL_DIR / READER_WEIGHTS_NAME).is_file():
        log("training the reader on the three train splits")
        trains = [dataset(name, split="train") for name in DOMAINS]
        report = train_and_save_reader(config, trains, MODEL_DIR / READER_WEIGHTS_NAME, ReaderTrainingArguments())
        log(f"reader: {report}")
    config.save(MODEL_DIR / CONFIG_NAME)
    lentil = SpicyLentil.from_pretrained(MODEL_DIR)
    log("fitting the reader weights, the first-stage trust and the scalings")
    splits = [(data, index_of(lentil, data)) for data in (dataset(name) for name in DOMAINS)]
    calibration = fit_calibration(lentil, splits, 3, None, ["scifact"], TRUST_CANDIDATES,
                                  {"everyday": read_answer_cases(EVERYDAY)})
    lentil.save_pretrained(MODEL_DIR)
    (MODEL_DIR / "calibration.json").write_text(json.dumps(calibration.to_dict(), indent=2) + "\n", encoding="utf-8")
    return lentil


def judged(lentil) -> dict:
    """Slot MAP on every `val`, the everyday set, as `matrix` judges a system."""
    scored = field_scores(lentil, lambda sentences: {"sentences": list(sentences)})
    return matrix({"row": System(sentence_scores(scored.sentences).split, scored.sentences, scored.paragraph)})["row"]


def seconds_per_document(lentils: dict, documents: list[dict], query: str, repeats: int) -> dict:
    """Median seconds of `fields` over the documents per model, alternating, each run encoding afresh."""
    def run(lentil):
        def call():
            lentil.encoder.clear_cache()
            lentil.fields(query, documents, show_progress_bar=False)
        return call
    times = alternate({name: run(lentil) for name, lentil in lentils.items()}, repeats)
    return {name: statistics.median(times[name]) / len(documents) for name in lentils}


def render(result: dict) -> str:
    rows = result["rows"]
    cells = []
    for name in ROWS:
        r, cal = rows[name], rows[name]["calibration"]
        cells.append([name, *(f"{r[d]['slot_map']:.3f}" for d in DOMAINS),
                      *(f"{r['everyday'][k]:.3f}" for k in ("answer_first", "answer_above_threshold",
                                                             "paragraph_above_threshold")),
                      f"{cal['first_stage_trust']['per_dataset']['scifact'][1]:.4f}",
                      f"{1e3 * result['seconds_per_document'][name]:.1f}"])
    slot_cells = [[name, *(f"{rows[name]['calibration']['per_dataset'][d]['slot']['f1_at_threshold']:.3f} / "
                           f"{rows[name]['calibration']['per_dataset'][d]['slot']['best_f1']:.3f} / "
                           f"{rows[name]['calibration']['per_dataset'][d]['slot']['ece']:.3f}"
                           for d in (*DOMAINS, "everyday"))] for name in ROWS]
    mix = rows["reader"]["calibration"]["reader_mix"]
    return fill(SECTION, **result, slot_weight=mix["slot_weight"], doc_weight=mix["doc_weight"],
                slowdown=result["seconds_per_document"]["reader"] / result["seconds_per_document"]["shipped"],
                grid=", ".join(f"{w}: " + " / ".join(f"{m[d]:.3f}" for d in (*DOMAINS, "everyday"))
                               for w, m in mix["slot_map"].items()),
                table=markdown_table(["model", *(f"{d} slot MAP" for d in DOMAINS), "everyday answer first",
                                      "answer >= 0.5", "paragraph >= 0.5", "SciFact nDCG@10 (top 30)",
                                      "ms per document"], cells),
                slot_table=markdown_table(["model", *DOMAINS, "everyday"], slot_cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=50, help="SciFact abstracts timed per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each model (interleaved)")
    args = parser.parse_args()
    from spicy_lentil import SpicyLentil
    from spicy_lentil.network.checkpoint import DEFAULT_MODEL_DIR

    models = {"shipped": SpicyLentil.from_pretrained(), "reader": reader_model(DEFAULT_MODEL_DIR)}
    calibrations = {"shipped": DEFAULT_MODEL_DIR / "calibration.json", "reader": MODEL_DIR / "calibration.json"}
    rows = {}
    for name, lentil in models.items():
        log(f"judging {name}")
        rows[name] = {**judged(lentil), "calibration": json.loads(calibrations[name].read_text(encoding="utf-8"))}
    documents = read_jsonl(SCIFACT_DIR / "corpus.jsonl", args.docs)
    query = read_jsonl(SCIFACT_DIR / "queries.jsonl", 1)[0]["text"]
    log(f"timing fields over {len(documents)} abstracts")
    seconds = seconds_per_document(models, documents, query, args.repeats)
    publish(SECTION, __spec__.name, {"rows": rows, "seconds_per_document": seconds, "documents": len(documents),
                                     "repeats": args.repeats})


if __name__ == "__main__":
    main()
