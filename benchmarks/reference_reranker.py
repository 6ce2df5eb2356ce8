"""The training issue's reference reranker on SciFact: where does its gain over the fusion come from?

    .venv/bin/python -m benchmarks.reference_reranker [--epochs 12]

Trains the issue's yardstick ("one small interaction MLP with attention pooling over sentences, fed the fusion scores,
on frozen MiniLM") on `train` and, after every epoch, reranks the fusion's top 100 for every `val` claim.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.common import fill, markdown_table
from benchmarks.harness import dataset, index_of, ndcg_by_document_novelty, scifact_val_by_document_novelty
from benchmarks.render import publish

SECTION = "reference-reranker"
NEGATIVE_POOL = 50  # hard negatives come from the fusion's top 50, as in `spicy-lentil train`
NEGATIVES = 15
QUERIES_PER_STEP = 8
CANDIDATES = 100
PARTS = ("all", "seen", "unseen")


def interaction_reranker(dim: int = 384, hidden: int = 128, dropout: float = 0.1):
    """An interaction MLP per sentence, attention pooling over sentences, and a document MLP that also reads the
    fusion's z-scores. (The class is made here, not at module level: importing this module needs no torch.)"""
    import torch
    from torch import nn

    from spicy_lentil.corpus.first_stage import PRIOR_FEATURES

    class InteractionReranker(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.sentence = nn.Sequential(nn.Linear(4 * dim + 1, hidden), nn.GELU(), nn.Dropout(dropout),
                                          nn.Linear(hidden, hidden), nn.GELU())
            self.attention = nn.Linear(hidden, 1)
            self.sentence_score = nn.Linear(hidden, 1)
            self.document = nn.Sequential(nn.Linear(hidden + 1 + PRIOR_FEATURES, hidden), nn.GELU(),
                                          nn.Linear(hidden, 1))

        def forward(self, query, slots, mask, prior):
            q = query.expand_as(slots)  # (docs, slots, dim)
            h = self.sentence(torch.cat([q, slots, q * slots, (q - slots).abs(), (q * slots).sum(-1, keepdim=True)],
                                        -1))  # (docs, slots, hidden)
            weights = self.attention(h).squeeze(-1).masked_fill(~mask, float("-inf")).softmax(-1)  # (docs, slots)
            pooled = (weights.unsqueeze(-1) * h).sum(1)  # (docs, hidden)
            best = self.sentence_score(h).squeeze(-1).masked_fill(~mask, float("-inf")).max(-1).values  # (docs,)
            return self.document(torch.cat([pooled, best.unsqueeze(-1), prior], -1)).squeeze(-1)  # (docs,)

    return InteractionReranker()


def candidates(data, lentil, index, first_stage, pool: int) -> list[dict]:
    """Per claim: its embedding, the fusion's top `pool` (plus, for training, every cited abstract) and their
    z-scores."""
    import numpy as np
    import torch

    ids = list(data.queries)
    examples = []
    for query_id, encoding in zip(ids, lentil.encoder.encode([data.queries[q] for q in ids])):
        signals = first_stage.signals(index, data.queries[query_id], encoding.embedding.numpy())
        docs = first_stage.candidates(signals, pool)
        cited = {index.position[d] for d, relevance in data.qrels[query_id].items() if relevance > 0}
        if data.split == "train":
            docs = np.array(list(dict.fromkeys([*docs.tolist(), *sorted(cited)])), dtype=np.int64)
        examples.append({"id": query_id, "query": encoding.embedding.float(), "docs": docs, "cited": cited,
                         "prior": torch.from_numpy(first_stage.prior(signals, docs))})
    return examples


def slot_batches(index):
    """docs -> (padded slot encodings, mask) of those documents from the index, each document read once."""
    import torch
    from torch import nn

    cache = {}

    def batch(docs):
        rows = [cache[d] if d in cache else cache.setdefault(d, index.document_encoding(d).slots)
                for d in docs.tolist()]
        mask = nn.utils.rnn.pad_sequence([torch.ones(len(r), dtype=torch.bool) for r in rows], batch_first=True)
        return nn.utils.rnn.pad_sequence(rows, batch_first=True), mask  # (docs, slots, dim), (docs, slots)
    return batch


def train_epoch(model, optimizer, train: list[dict], slots, rng) -> float:
    """One pass over the (claim, cited abstract) pairs in random order; returns the mean loss per step."""
    import torch
    from torch import nn

    model.train()
    groups = [(ex, doc) for ex in train for doc in sorted(ex["cited"])]
    losses = []
    order = rng.permutation(len(groups))
    for start in range(0, len(order), QUERIES_PER_STEP):
        loss = torch.zeros(())
        for g in order[start: start + QUERIES_PER_STEP]:
            ex, positive = groups[g]
            docs = ex["docs"].tolist()
            negatives = [i for i, d in enumerate(docs) if d not in ex["cited"]]
            picked = [docs.index(positive),
                      *rng.choice(negatives, size=min(NEGATIVES, len(negatives)), replace=False).tolist()]
            scores = model(ex["query"], *slots(ex["docs"][picked]), ex["prior"][picked])
            loss = loss + nn.functional.cross_entropy(scores.unsqueeze(0), torch.zeros(1, dtype=torch.long))
        optimizer.zero_grad()
        (loss / QUERIES_PER_STEP).backward()
        optimizer.step()
        losses.append(float(loss) / QUERIES_PER_STEP)
    return sum(losses) / len(losses)


def rerank(model, val: list[dict], slots, index) -> dict[str, dict[str, float]]:
    """The model's scores of every val claim's candidates, as a run."""
    import torch

    model.eval()
    with torch.inference_mode():
        return {ex["id"]: {index.doc_ids[d]: float(s) for d, s in
                           zip(ex["docs"].tolist(), model(ex["query"], *slots(ex["docs"]), ex["prior"]))}
                for ex in val}


def measure(epochs: int, seed: int) -> dict:
    """Trains for `epochs`, nDCG@10 per part after each; the fusion's own nDCG@10 and the best epoch's gain on it."""
    import numpy as np
    import torch

    from spicy_lentil import SpicyLentil
    from spicy_lentil.corpus.first_stage import FirstStage

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    lentil = SpicyLentil.from_pretrained()
    splits = {split: dataset("scifact", split) for split in ("train", "val")}
    index, first_stage = index_of(lentil, splits["val"]), FirstStage()
    train = candidates(splits["train"], lentil, index, first_stage, NEGATIVE_POOL)
    val = candidates(splits["val"], lentil, index, first_stage, CANDIDATES)
    slots, model = slot_batches(index), interaction_reranker()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    parts = scifact_val_by_document_novelty()
    fusion_run = {ex["id"]: {index.doc_ids[d]: float(p[-1]) for d, p in zip(ex["docs"].tolist(), ex["prior"])}
                  for ex in val}
    history, started = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss = train_epoch(model, optimizer, train, slots, rng)
        history.append({"epoch": epoch, "loss": loss, **ndcg_by_document_novelty(rerank(model, val, slots, index),
                                                                                 parts)})
        print(history[-1], flush=True)
    fusion = ndcg_by_document_novelty(fusion_run, parts)
    best = max(history, key=lambda row: row["all"])
    return {"seed": seed, "seen": len(parts["seen"]), "unseen": len(parts["unseen"]), "fusion": fusion,
            "epochs": history, "best_epoch": best["epoch"], "gain": {p: best[p] - fusion[p] for p in PARTS},
            "minutes": (time.perf_counter() - started) / 60}


def render(result: dict) -> str:
    rows = [["fusion (first stage)", "-"] + [f"{result['fusion'][p]:.4f}" for p in PARTS]]
    rows += [[r["epoch"], f"{r['loss']:.3f}"] + [f"{r[p]:.4f}" for p in PARTS] for r in result["epochs"]]
    return fill(SECTION, **result, negatives=NEGATIVES, negative_pool=NEGATIVE_POOL, queries_per_step=QUERIES_PER_STEP,
                candidates=CANDIDATES, table=markdown_table(["epoch", "train loss", "nDCG@10 all", *PARTS[1:]], rows))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    publish(SECTION, __spec__.name, measure(args.epochs, args.seed))


if __name__ == "__main__":
    main()
