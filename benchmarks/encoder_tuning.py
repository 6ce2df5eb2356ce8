"""Encoder tuning recipes, judged by the tuned encoder's plain cosine on every domain.

    .venv/bin/python -m benchmarks.encoder_tuning

Rows: the bundled MiniLM untuned; tuned with a random in-document negative per triplet (the issue's probe recipe,
the sentence bi-encoder baseline and the shipped default's encoder); tuned with the mined negative
(`--tune-negatives mined`). Both are tuned on the three train splits by `SentenceBiEncoder.trained`, once, cached
under `cache/`. Cosine alone, no head: what each recipe gives the pathways to build on.
"""

from __future__ import annotations

from benchmarks.common import CACHE_DIR, DOMAINS, fill, markdown_table
from benchmarks.harness import cosine, dataset, matrix
from benchmarks.render import publish

SECTION = "encoder-tuning"
LABELS = {
    "untuned": "MiniLM, untuned",
    "random": "tuned, random negative (the bi-encoder baseline; the shipped default's encoder)",
    "mined": "tuned, mined negative (`--tune-negatives mined`)",
}


def measure() -> dict:
    from spicy_lentil.network.config import BUNDLED_ENCODER
    from spicy_lentil.network.encoder import Encoder
    from spicy_lentil.training.baselines import SentenceBiEncoder

    trains = [dataset(name, "train") for name in DOMAINS]
    tuned = {n: SentenceBiEncoder.trained(trains, BUNDLED_ENCODER, CACHE_DIR, n).encoder for n in ("random", "mined")}
    return {"rows": matrix({"untuned": cosine(Encoder(BUNDLED_ENCODER, device="cpu")),
                            **{negatives: cosine(encoder) for negatives, encoder in tuned.items()}})}


def render(result: dict) -> str:
    rows = result["rows"]
    header = ["encoder"] + [f"{n} {m}" for n in DOMAINS for m in ("MAP", "MRR")] + ["everyday: answer 1st"]
    table = [[LABELS[key]] + [f"{row[n][m]:.3f}" for n in DOMAINS for m in ("slot_map", "slot_mrr")]
             + [f"{row['everyday']['answer_first']:.3f}"] for key, row in rows.items()]
    base = rows["random"]
    gains = [[LABELS[key]] + [f"{row[n]['slot_map'] - base[n]['slot_map']:+.3f}" for n in DOMAINS]
             + [f"{row['everyday']['answer_first'] - base['everyday']['answer_first']:+.3f}"]
             for key, row in rows.items() if key != "random"]
    return fill(SECTION, pairs=", ".join(f"{n} {rows['untuned'][n]['pairs']}" for n in DOMAINS),
                table=markdown_table(header, table), gains=markdown_table(["encoder", *DOMAINS, "everyday"], gains))


def main() -> None:
    publish(SECTION, __spec__.name, measure())


if __name__ == "__main__":
    main()
