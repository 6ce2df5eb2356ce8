"""The fine-tuned bi-encoder baselines: sentence-transformers trained on the same split with
MultipleNegativesRankingLoss.

Trained once per (encoder, training data) and cached under `cache/`; it is a yardstick, never shipped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..network.encoder import load_sentence_transformer
from .data import RelevanceData


def _fingerprint(data: RelevanceData, encoder: str, epochs: int) -> str:
    payload = json.dumps(
        {"encoder": encoder, "epochs": epochs, "qrels": data.qrels, "queries": data.queries}, sort_keys=True
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def _doc_text(doc: dict) -> str:
    return f"{doc['title']}. {doc['text']}" if doc.get("title") else doc["text"]


class FineTunedBiEncoder:
    """A sentence-transformers bi-encoder fine-tuned on `train` and cached.

    Args:
        train: the training split (its positives are the MNRL pairs).
        encoder: the starting sentence-transformers model.
        cache_dir: where the model and its corpus embeddings are kept.
        epochs: training epochs.
    """

    def __init__(
        self,
        train: RelevanceData,
        encoder: str,
        cache_dir: str | Path = "cache",
        epochs: int = 1,
        batch_size: int = 32,
        seed: int = 0,
    ) -> None:
        self.folder = Path(cache_dir) / f"bi-encoder-{_fingerprint(train, encoder, epochs)}"
        if not (self.folder / "model" / "config.json").is_file():
            self._train(train, encoder, epochs, batch_size, seed)
        self.model = load_sentence_transformer(str(self.folder / "model"))

    def _train(self, train: RelevanceData, encoder: str, epochs: int, batch_size: int, seed: int) -> None:
        from datasets import Dataset
        from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        from sentence_transformers.losses import MultipleNegativesRankingLoss

        pairs = {"anchor": [], "positive": []}
        for query_id, docs in train.qrels.items():
            for doc_id, rel in docs.items():
                if rel > 0 and doc_id in train.corpus:
                    pairs["anchor"].append(train.queries[query_id])
                    pairs["positive"].append(_doc_text(train.corpus[doc_id]))
        model = load_sentence_transformer(encoder)
        args = SentenceTransformerTrainingArguments(
            output_dir=str(self.folder / "runs"),
            num_train_epochs=epochs,
            per_device_train_batch_size=batch_size,
            learning_rate=2e-5,
            warmup_ratio=0.1,
            seed=seed,
            report_to=[],
            save_strategy="no",
            logging_steps=10,
            batch_sampler="no_duplicates",
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=Dataset.from_dict(pairs), loss=MultipleNegativesRankingLoss(model)
        )
        trainer.train()
        model.save(str(self.folder / "model"), safe_serialization=True)

    def corpus_embeddings(self, data: RelevanceData) -> tuple[list[str], np.ndarray]:
        """Embeddings of every corpus document, computed once per corpus and kept beside the model."""
        digest = hashlib.sha256("\n".join(sorted(data.corpus)).encode("utf-8")).hexdigest()[:16]
        path = self.folder / f"corpus-{digest}.npy"
        ids = list(data.corpus)
        if path.is_file():
            return ids, np.load(path, allow_pickle=False)
        embeddings = self.model.encode(
            [_doc_text(data.corpus[i]) for i in ids],
            batch_size=32,
            normalize_embeddings=True,
            show_progress_bar=True,
            convert_to_numpy=True,
        )
        np.save(path, embeddings.astype(np.float32), allow_pickle=False)
        return ids, embeddings

    def run(self, data: RelevanceData, top_n: int = 100) -> dict[str, dict[str, float]]:
        """The bi-encoder's top-n ranking for each of the split's queries."""
        ids, embeddings = self.corpus_embeddings(data)
        queries = list(data.queries)
        q = self.model.encode([data.queries[i] for i in queries], normalize_embeddings=True, convert_to_numpy=True)
        scores = q @ embeddings.T  # (queries, docs)
        run = {}
        for row, query_id in enumerate(queries):
            top = np.argsort(-scores[row])[:top_n]
            run[query_id] = {ids[i]: float(scores[row, i]) for i in top}
        return run


class SentenceBiEncoder:
    """The sentence-level yardstick: an encoder tuned on (query, answering sentence) pairs of the training
    splits by `encoder_tuning` (the recipe Spicy Lentil's own encoder is tuned with), ranking slots by
    cosine alone. Against it, a model over the same tuned encoder shows what its pathways add.

    Args:
        encoder: the base sentence-transformers model.
        weights: the tuned tensors (`encoder.safetensors`).
    """

    def __init__(self, encoder: str, weights: str | Path) -> None:
        from ..network.encoder import Encoder

        self.encoder = Encoder(encoder, device="cpu", weights=weights)

    @classmethod
    def trained(
        cls, splits: list[RelevanceData], encoder: str, cache_dir: str | Path = "cache", negatives: str = "random"
    ) -> "SentenceBiEncoder":
        """Tunes `encoder` on the splits' sentence labels, once per (encoder, splits, negatives), cached under
        `cache_dir`; `negatives` is `EncoderTuningArguments.negatives`."""
        from ..network.encoder import ENCODER_WEIGHTS_NAME
        from .encoder_tuning import EncoderTuningArguments, tune_encoder

        recipe = {"encoder": encoder, "slot_qrels": [sorted(map(str, s.slot_qrels.items())) for s in splits]}
        if negatives != "random":  # random keeps the key it had before there was a choice
            recipe["negatives"] = negatives
        payload = json.dumps(recipe)
        folder = Path(cache_dir) / f"sentence-bi-encoder-{hashlib.sha256(payload.encode('utf-8')).hexdigest()[:16]}"
        if not (folder / ENCODER_WEIGHTS_NAME).is_file():
            tune_encoder(encoder, splits, folder, EncoderTuningArguments(negatives=negatives))
        return cls(encoder, folder / ENCODER_WEIGHTS_NAME)

    def slot_scores(self, query: str, slots: list[str]) -> list[float]:
        """Cosine of each slot to the query."""
        q, *s = self.encoder.encode([query, *slots], use_cache=False)
        return [float(v.embedding @ q.embedding) for v in s]
