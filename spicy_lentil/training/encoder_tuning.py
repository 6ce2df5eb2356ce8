"""Fine-tuning the encoder on (query, answering sentence) pairs, shipped as a small weights file.

A frozen sentence vector does not carry "which sentence answers *how tall*": heads on frozen MiniLM
stay near plain cosine across domains (`BENCHMARKS.md`, generalization). Tuning the encoder itself
on sentence pairs is what moves sentence ranking, so `train` can start with this stage.

Recipe: one (query, answering sentence, non-answering sentence of the same document) triplet per
labelled pair of every training split (the negative drawn at random, or, with `negatives="mined"`,
the one the untuned encoder ranks closest to the query: the sentence a cosine ranking confuses),
MultipleNegativesRankingLoss (in-batch softmax with the in-document hard negative; Henderson et al.
2017) through sentence-transformers' trainer. The word-embedding table stays frozen: it is half of
MiniLM's weights, and words that never occur in the training pairs keep their pretrained vectors.
Only the tuned tensors are written (`encoder.safetensors`, float16), applied over the base encoder
when the model loads.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..network.config import TUNING_NEGATIVES
from ..network.encoder import ENCODER_WEIGHTS_NAME, load_sentence_transformer
from .data import RelevanceData

FROZEN_PREFIXES = ("embeddings.",)  # relative to the transformer; frozen and never written


@dataclass
class EncoderTuningArguments:
    epochs: int = 2  # passes over the triplets
    batch_size: int = 16  # triplets per step; every other positive in the batch is a negative too
    learning_rate: float = 2e-5  # AdamW with 10% warm-up, sentence-transformers' defaults otherwise
    seed: int = 0
    negatives: str = "random"  # each triplet's in-document negative: "random" or "mined" (see `sentence_triplets`)


def sentence_triplets(
    splits: list[RelevanceData],
    seed: int = 0,
    similarity: Callable[[str, Sequence[str]], Sequence[float]] | None = None,
) -> dict[str, list[str]]:
    """One (anchor, positive, negative) triplet per labelled (query, document) pair of every split.

    Args:
        splits: training splits with sentence labels.
        seed: the draws of positives and negatives.
        similarity: (query, sentences) -> one score per sentence; given, each negative is the
            document's other sentence it scores highest (a mined hard negative), else a random one.

    The positive is one of the document's labelled sentences, the negative one of its other
    sentences (a sentence of another labelled document where every sentence is labelled).
    """
    rng = np.random.default_rng(seed)
    triplets: dict[str, list[str]] = {"anchor": [], "positive": [], "negative": []}
    for data in splits:
        keys = [k for k in sorted(data.slot_qrels) if k[0] in data.queries and data.corpus[k[1]].get("sentences")]
        for query_id, doc_id in keys:
            sentences = data.corpus[doc_id]["sentences"]
            labelled = sorted(i for i in data.slot_qrels[(query_id, doc_id)] if i < len(sentences))
            others = [i for i in range(len(sentences)) if i not in labelled]
            if not labelled:
                continue
            if others and similarity is not None:
                scores = similarity(data.queries[query_id], [sentences[i] for i in others])
                negative = sentences[others[max(range(len(others)), key=lambda j: scores[j])]]
            elif others:
                negative = sentences[int(rng.choice(others))]
            else:
                other_query, other_doc = keys[int(rng.integers(len(keys)))]
                negative = data.corpus[other_doc]["sentences"][0]
            triplets["anchor"].append(data.queries[query_id])
            triplets["positive"].append(sentences[int(rng.choice(labelled))])
            triplets["negative"].append(negative)
    return triplets


def tune_encoder(
    base: str, splits: list[RelevanceData], output: str | Path, args: EncoderTuningArguments | None = None
) -> Path:
    """Tunes `base` on the splits' sentence triplets and writes the tuned tensors to `output/encoder.safetensors`.

    Args:
        base: the starting sentence-transformers model (name, folder or the bundled alias).
        splits: training splits with sentence labels (`slot_qrels`).
        output: the model folder the weights file goes into.
        args: the tuning arguments.

    Returns:
        The path of the weights file.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.losses import MultipleNegativesRankingLoss

    args = args or EncoderTuningArguments()
    if args.negatives not in TUNING_NEGATIVES:
        raise ValueError(f"negatives must be one of {', '.join(TUNING_NEGATIVES)}, not {args.negatives!r}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model = load_sentence_transformer(base, device="cpu")
    similarity = None
    if args.negatives == "mined":
        # One batched encode of every text the mining compares: per-pair calls cost minutes in overhead.
        texts = sorted({
            text
            for data in splits
            for query_id, doc_id in data.slot_qrels
            if query_id in data.queries
            for text in (data.queries[query_id], *data.corpus.get(doc_id, {}).get("sentences", []))
        })
        vectors = dict(zip(texts, model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)))

        def similarity(query: str, sentences: Sequence[str]) -> list[float]:
            return [float(vectors[sentence] @ vectors[query]) for sentence in sentences]

    triplets = sentence_triplets(splits, args.seed, similarity)
    if not triplets["anchor"]:
        raise ValueError("no labelled sentences in the training data: the encoder cannot be tuned")
    transformer = model[0].auto_model
    for name, parameter in transformer.named_parameters():
        parameter.requires_grad = not name.startswith(FROZEN_PREFIXES)
    scratch = tempfile.TemporaryDirectory(prefix="encoder-tuning-")  # the trainer's output_dir; nothing is saved there
    training = SentenceTransformerTrainingArguments(
        output_dir=scratch.name,
        num_train_epochs=args.epochs,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        warmup_steps=0.1,
        seed=args.seed,
        report_to=[],
        save_strategy="no",
        logging_steps=50,
        batch_sampler="no_duplicates",
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=training, train_dataset=Dataset.from_dict(triplets), loss=MultipleNegativesRankingLoss(model)
    )
    with scratch:
        trainer.train()
    tuned = {
        name: parameter.detach().to(torch.float16).contiguous()
        for name, parameter in transformer.named_parameters()
        if parameter.requires_grad
    }
    path = output / ENCODER_WEIGHTS_NAME
    meta = {"base": base, "triplets": str(len(triplets["anchor"])), "args": json.dumps(args.__dict__)}
    save_file(tuned, path, metadata=meta)
    return path
