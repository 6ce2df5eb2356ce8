"""Encoder tuning recipes, judged by the tuned encoder's plain cosine on every domain, into BENCHMARKS.md.

    .venv/bin/python -m benchmarks.encoder_tuning

Rows: the bundled MiniLM untuned; tuned with a random in-document negative per triplet (the
issue's probe recipe, the sentence bi-encoder baseline and the shipped default's encoder); tuned
with the mined negative (`--tune-negatives mined`). Both tuned on the three train splits by
`SentenceBiEncoder.trained`, once, cached under `cache/`. Columns: slot MAP / MRR of cosine
over the sentences of each labelled (question, document) pair of every `val`, and the everyday
set's answer ranked first. Cosine alone, no head: what each recipe gives the pathways to build on.
"""

from __future__ import annotations

from benchmarks.common import CACHE_DIR, DOMAINS, SHARED_DATA, cosine_row, markdown_table
from benchmarks.render import publish

SECTION = "encoder-tuning"


def measure() -> dict:
    from spicy_lentil.network.config import BUNDLED_ENCODER
    from spicy_lentil.network.encoder import Encoder
    from spicy_lentil.training.baselines import SentenceBiEncoder
    from spicy_lentil.training.data import load_data

    trains = [load_data(SHARED_DATA / name, "train") for name in DOMAINS]
    rows = {"untuned": cosine_row(Encoder(BUNDLED_ENCODER, device="cpu"))}
    for negatives in ("random", "mined"):
        rows[negatives] = cosine_row(SentenceBiEncoder.trained(trains, BUNDLED_ENCODER, CACHE_DIR, negatives).encoder)
    return {"rows": rows}


LABELS = {
    "untuned": "MiniLM, untuned",
    "random": "tuned, random negative (the bi-encoder baseline; the shipped default's encoder)",
    "mined": "tuned, mined negative (`--tune-negatives mined`)",
}


def render(result: dict) -> str:
    rows = result["rows"]
    header = ["encoder"] + [f"{n} {m}" for n in DOMAINS for m in ("MAP", "MRR")] + ["everyday: answer 1st"]
    table = [[LABELS[key]] + [f"{row[n][m]:.3f}" for n in DOMAINS for m in ("slot_map", "slot_mrr")]
             + [f"{row['everyday']['answer_first']:.3f}"] for key, row in rows.items()]
    gains = [[LABELS[key]] + [f"{row[n]['slot_map'] - rows['random'][n]['slot_map']:+.3f}" for n in DOMAINS]
             + [f"{row['everyday']['answer_first'] - rows['random']['everyday']['answer_first']:+.3f}"]
             for key, row in rows.items() if key != "random"]
    pairs = ", ".join(f"{n} {rows['untuned'][n]['pairs']}" for n in DOMAINS)
    return "\n".join([
        "## Encoder tuning: which negative each triplet carries",
        "",
        "Cosine of each encoder alone (no head), slot MAP / MRR over the sentences of every labelled (question, "
        f"document) pair of `val` ({pairs} pairs; never trained on) and the everyday set's answer ranked first. "
        "Both tuned rows use the same 2,637 triplets of the three train splits (one per labelled pair), the same "
        "loss, epochs and seed; only the negative differs: a random other sentence of the document, or the one "
        "the untuned encoder ranks closest to the query (`--tune-negatives mined`).",
        "",
        markdown_table(header, table),
        "",
        "Against the random negative (slot MAP, and everyday answer first):",
        "",
        markdown_table(["encoder", *DOMAINS, "everyday"], gains),
    ])


def main() -> None:
    publish(SECTION, __spec__.name, measure())


if __name__ == "__main__":
    main()
