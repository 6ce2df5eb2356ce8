"""Trains (once, cached under cache/) the fine-tuned bi-encoder baseline that `spicy-lentil eval --baselines`
compares against.

    .venv/bin/python -m benchmarks.train_bi_encoder

sentence-transformers' MultipleNegativesRankingLoss on SciFact `train` (claim, cited abstract)
pairs, one epoch, from the bundled all-MiniLM-L6-v2. Never shipped; `eval` loads it from the cache
(and trains it there itself if it is missing). It measures nothing, so it has no section and no `render`.
"""

from __future__ import annotations

from benchmarks.common import CACHE_DIR, SCIFACT_DIR


def main() -> None:
    from spicy_lentil.network.config import BUNDLED_ENCODER
    from spicy_lentil.training.baselines import FineTunedBiEncoder
    from spicy_lentil.training.data import load_data

    train = load_data(SCIFACT_DIR, "train")
    model = FineTunedBiEncoder(train, BUNDLED_ENCODER, CACHE_DIR)
    model.corpus_embeddings(train)
    print(f"bi-encoder ready in {model.folder}")


if __name__ == "__main__":
    main()
