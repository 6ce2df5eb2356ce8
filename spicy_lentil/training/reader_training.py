"""Training the reader (`network/reader.py`): a cross-encoder over (query, sentence) pairs of the training splits.

Recipe: every sentence of every labelled (query, document) pair, the labelled ones 1 and the rest 0, plus
every sentence of a document asked a question it does not answer (0); one document's sentences always
in one step, so that besides binary cross-entropy per sentence (what makes its logit a level: Provence,
Chirkova et al. 2025, trains its pruner pointwise) a listwise softmax over the document's sentences
ranks the answer above its neighbours (the slot-ranking term of the head's losses). The word-embedding
table stays frozen, as in `encoder_tuning`. A fraction of an epoch is allowed: on two CPU cores one epoch
over the three shared datasets takes about an hour.
"""

from __future__ import annotations

import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..network.config import SpicyLentilConfig
from ..network.reader import FROZEN_PREFIXES, Reader, load_backbone
from .data import RelevanceData


@dataclass
class ReaderTrainingArguments:
    epochs: float = 0.35  # passes over the documents (a fraction: the first part of one shuffled pass)
    pairs_per_step: int = 32  # (query, sentence) pairs per optimizer step, whole documents at a time
    max_sentences: int = 24  # sentences of a document read per step (the first ones): a step's size stays bounded
    learning_rate: float = 3e-5  # AdamW; linear warm-up over `warmup_steps`, then linear decay to 0
    warmup_steps: int = 50
    weight_decay: float = 0.01
    seed: int = 0


@dataclass
class ReaderGroup:
    """One document's sentences read with one query, and which of them answer it."""

    query: str
    sentences: list[str]
    labels: list[int]


def reader_groups(splits: list[RelevanceData]) -> list[ReaderGroup]:
    """Every labelled (query, document) pair of the splits, and every unanswerable one, as `ReaderGroup`s."""
    groups = []
    for data in splits:
        for (query_id, doc_id), answers in sorted(data.slot_qrels.items()):
            sentences = data.corpus.get(doc_id, {}).get("sentences")
            if sentences and query_id in data.queries:
                labels = [int(i in answers) for i in range(len(sentences))]
                groups.append(ReaderGroup(data.queries[query_id], list(sentences), labels))
        for _, query, doc_id in data.unanswerable:
            sentences = data.corpus.get(doc_id, {}).get("sentences")
            if sentences:
                groups.append(ReaderGroup(query, list(sentences), [0] * len(sentences)))
    return groups


def reader_loss(logits: torch.Tensor, labels: torch.Tensor, group_sizes: list[int]) -> torch.Tensor:
    """Mean binary cross-entropy over the pairs plus the mean listwise softmax cross-entropy over each group
    with an answer (its answers sharing the target mass).

    Args:
        logits: (pairs,) the reader's logits, groups one after another.
        labels: (pairs,) 0/1.
        group_sizes: pairs per group, summing to `pairs`.
    """
    loss = nn.functional.binary_cross_entropy_with_logits(logits, labels)
    listwise = [
        -(torch.log_softmax(g_logits, 0) * g_labels / g_labels.sum()).sum()
        for g_logits, g_labels in zip(logits.split(group_sizes), labels.split(group_sizes))
        if g_labels.sum() > 0
    ]
    return loss + torch.stack(listwise).mean() if listwise else loss


def train_reader(reader: Reader, tokenizer, splits: list[RelevanceData], args: ReaderTrainingArguments) -> dict:
    """Trains `reader` in place on the splits' sentence labels.

    Args:
        reader: the reader, its backbone as loaded (`reader.load_backbone`).
        tokenizer: the backbone's tokenizer; pairs are encoded as `Reader.pair_inputs` builds them from token ids.
        splits: training splits with sentence labels.
        args: the arguments.

    Returns:
        `{"groups", "steps", "loss"}`: documents in the training set, optimizer steps, the last 50 steps' mean loss.

    Raises:
        ValueError: the splits hold no labelled sentence.
    """
    groups = reader_groups(splits)
    if not any(any(g.labels) for g in groups):
        raise ValueError("training the reader needs sentence labels (slot qrels); the splits have none")
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    steps = []
    for _ in range(math.ceil(args.epochs)):
        order = list(groups)
        rng.shuffle(order)
        steps += _steps(order, args)
    steps = steps[: max(1, round(len(steps) / math.ceil(args.epochs) * args.epochs))]
    for name, parameter in reader.named_parameters():
        parameter.requires_grad_(not name.removeprefix("backbone.").startswith(FROZEN_PREFIXES))
    trained = [p for p in reader.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=args.learning_rate, weight_decay=args.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / args.warmup_steps) * max(0.0, 1 - s / len(steps))
    )
    reader.train()
    losses = []
    for number, step in enumerate(steps):
        sentences = [s for g in step for s in g.sentences]
        inputs = tokenizer(
            [g.query for g in step for _ in g.sentences], sentences, truncation="only_second",
            max_length=reader.max_tokens, padding=True, return_tensors="pt",
        )
        labels = torch.tensor([label for g in step for label in g.labels], dtype=torch.float32)
        loss = reader_loss(reader.pair_logits(dict(inputs)), labels, [len(g.sentences) for g in step])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if number % 50 == 0:
            print(f"reader step {number}/{len(steps)}: loss {loss.item():.3f}", file=sys.stderr, flush=True)
    reader.eval()
    for parameter in reader.parameters():
        parameter.requires_grad_(False)
    return {"groups": len(groups), "steps": len(steps), "loss": float(sum(losses[-50:]) / len(losses[-50:]))}


def train_and_save_reader(
    config: SpicyLentilConfig, splits: list[RelevanceData], path: Path, args: ReaderTrainingArguments
) -> dict:
    """Trains a reader from `config.reader` (its base model) on the splits and writes its tensors to `path`.

    Returns:
        What `train_reader` returns.
    """
    backbone, tokenizer = load_backbone(config.reader)
    reader = Reader(backbone, tokenizer, config.reader_max_tokens)
    report = train_reader(reader, tokenizer, splits, args)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"base": config.reader, "args": json.dumps(args.__dict__), **{k: str(v) for k, v in report.items()}}
    save_file(reader.tuned_state(), str(path), metadata=meta)
    return report


def _steps(groups: list[ReaderGroup], args: ReaderTrainingArguments) -> list[list[ReaderGroup]]:
    """Consecutive groups packed into steps of at most `pairs_per_step` pairs (a larger group alone)."""
    steps, step, pairs = [], [], 0
    for group in groups:
        group = ReaderGroup(group.query, group.sentences[: args.max_sentences], group.labels[: args.max_sentences])
        if step and pairs + len(group.sentences) > args.pairs_per_step:
            steps.append(step)
            step, pairs = [], 0
        step.append(group)
        pairs += len(group.sentences)
    return steps + ([step] if step else [])
