"""Trains (once, cached under cache/) the fine-tuned bi-encoder baseline that `spicy-lentil eval --baselines` compares against.

    .venv/bin/python benchmarks/train_bi_encoder.py

sentence-transformers' MultipleNegativesRankingLoss on SciFact `train` (claim, cited abstract)
pairs, one epoch, from the bundled all-MiniLM-L6-v2. Never shipped; `eval` loads it from the cache
(and trains it there itself if it is missing).
"""

from __future__ import annotations

from common import CACHE_DIR, SCIFACT_DIR

from spicy_lentil.baselines import FineTunedBiEncoder
from spicy_lentil.config import BUNDLED_ENCODER
from spicy_lentil.data import load_data

if __name__ == "__main__":
    train = load_data(SCIFACT_DIR, "train")
    model = FineTunedBiEncoder(train, BUNDLED_ENCODER, CACHE_DIR)
    model.corpus_embeddings(train)
    print(f"bi-encoder ready in {model.folder}")
