"""Encoder tuning recipes, judged by the tuned encoder's plain cosine on every domain, into BENCHMARKS.md.

    .venv/bin/python -m benchmarks.encoder_tuning

Rows: the bundled MiniLM untuned; tuned with a random in-document negative per triplet (the shipped
default's `encoder.safetensors`, which a rerun of its command reproduces tensor for tensor); tuned
with the mined negative (`--tune-negatives mined`), tuned here on the same three train splits.
Columns: slot MAP / MRR of cosine over the sentences of each labelled (question, document) pair of
every `val`, and the everyday set's answer ranked first. Cosine alone, no head: what each recipe
gives the pathways to build on.
"""

from __future__ import annotations

import time

from benchmarks.common import CACHE_DIR, REPO_ROOT, markdown_table
from benchmarks.render import publish

SECTION = "encoder-tuning"
DATA = (REPO_ROOT / ".." / "shared" / "data").resolve()
DATASETS = ("scifact", "wikiqa", "selqa")
EVERYDAY = REPO_ROOT / "data" / "everyday.jsonl"


def cosine_row(encoder) -> dict:
    """Slot MAP / MRR of the encoder's cosine on each val's labelled pairs, and the everyday answer-first share."""
    from spicy_lentil.data import load_data
    from spicy_lentil.evaluation import answer_case_metrics, read_answer_cases, slot_metrics

    def scores(query, sentences):
        q, *s = encoder.encode([query, *sentences], use_cache=False)
        return [float(v.embedding @ q.embedding) for v in s]

    row = {}
    for name in DATASETS:
        val = load_data(DATA / name, "val")
        labels, ranked = {}, {}
        for (query_id, doc_id), slots in val.slot_qrels.items():
            sentences = val.corpus.get(doc_id, {}).get("sentences") or []
            if query_id in val.queries and sentences:
                labels[f"{query_id}|{doc_id}"] = [int(i in slots) for i in range(len(sentences))]
                ranked[f"{query_id}|{doc_id}"] = scores(val.queries[query_id], sentences)
        metrics = slot_metrics(labels, ranked)
        row[name] = {"slot_map": metrics["slot_map"], "slot_mrr": metrics["slot_mrr"], "pairs": len(labels)}
    row["everyday_answer_first"] = answer_case_metrics(read_answer_cases(EVERYDAY), scores)["answer_first"]
    return row


def measure() -> dict:
    from spicy_lentil.checkpoint import DEFAULT_MODEL_DIR
    from spicy_lentil.config import BUNDLED_ENCODER
    from spicy_lentil.data import load_data
    from spicy_lentil.encoder import Encoder
    from spicy_lentil.encoder_tuning import ENCODER_WEIGHTS_NAME, EncoderTuningArguments, tune_encoder

    trains = [load_data(DATA / name, "train") for name in DATASETS]
    started = time.time()
    mined = tune_encoder(BUNDLED_ENCODER, trains, CACHE_DIR / "encoder-tuning-mined",
                         EncoderTuningArguments(negatives="mined"))
    tuning_seconds = time.time() - started
    rows = {
        "untuned": cosine_row(Encoder(BUNDLED_ENCODER, device="cpu")),
        "random": cosine_row(Encoder(BUNDLED_ENCODER, device="cpu", weights=DEFAULT_MODEL_DIR / ENCODER_WEIGHTS_NAME)),
        "mined": cosine_row(Encoder(BUNDLED_ENCODER, device="cpu", weights=mined)),
    }
    return {"rows": rows, "mined_tuning_seconds": tuning_seconds}


LABELS = {
    "untuned": "MiniLM, untuned",
    "random": "tuned, random negative (the shipped default's encoder)",
    "mined": "tuned, mined negative (`--tune-negatives mined`)",
}


def render(result: dict) -> str:
    rows = result["rows"]
    header = ["encoder"] + [f"{n} {m}" for n in DATASETS for m in ("MAP", "MRR")] + ["everyday: answer 1st"]
    table = [[LABELS[key]] + [f"{row[n][m]:.3f}" for n in DATASETS for m in ("slot_map", "slot_mrr")]
             + [f"{row['everyday_answer_first']:.3f}"] for key, row in rows.items()]
    gains = [[LABELS[key]] + [f"{row[n]['slot_map'] - rows['random'][n]['slot_map']:+.3f}" for n in DATASETS]
             + [f"{row['everyday_answer_first'] - rows['random']['everyday_answer_first']:+.3f}"]
             for key, row in rows.items() if key != "random"]
    pairs = ", ".join(f"{n} {rows['untuned'][n]['pairs']}" for n in DATASETS)
    return "\n".join([
        "## Encoder tuning: which negative each triplet carries",
        "",
        "Cosine of each encoder alone (no head), slot MAP / MRR over the sentences of every labelled (question, "
        f"document) pair of `val` ({pairs} pairs; never trained on) and the everyday set's answer ranked first. "
        "Both tuned rows use the same 2,637 triplets of the three train splits (one per labelled pair), the same "
        "loss, epochs and seed; only the negative differs: a random other sentence of the document, or the one "
        "the untuned encoder ranks closest to the query. "
        f"Tuning with the mined negative took {result['mined_tuning_seconds'] / 60:.0f} minutes here, mining included.",
        "",
        markdown_table(header, table),
        "",
        "Against the random negative (slot MAP, and everyday answer first):",
        "",
        markdown_table(["encoder", *DATASETS, "everyday"], gains),
    ])


def main() -> None:
    publish(SECTION, __spec__.name, measure())


if __name__ == "__main__":
    main()
