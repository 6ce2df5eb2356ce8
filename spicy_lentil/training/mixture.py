"""A training mixture: the datasets one model trains on, how often each is drawn, and the macro-average over
their validation splits that picks the kept epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..corpus.index import CorpusIndex
from .data import RelevanceData


@dataclass
class TrainingSet:
    """One dataset of a training mixture."""

    train: RelevanceData  # the training split
    index: CorpusIndex  # its corpus index (built with the model's encoder)
    validation: RelevanceData | None = None  # the held-out split of the same corpus, or None
    weight: float = 1.0  # share of training steps drawn from this dataset, relative to the others
    rank_documents: bool = True  # validation nDCG@10 counts in model selection (ranking this corpus is meaningful)

    @property
    def name(self) -> str:
        return self.train.name


def parse_mix(spec: str | None, names: list[str]) -> dict[str, float]:
    """Dataset name -> sampling weight from `name=weight,...` (every dataset 1.0 when `spec` is None).

    Raises:
        ValueError: a malformed entry, an unknown or repeated name, or a weight that is not > 0.
    """
    weights = {name: 1.0 for name in names}
    if spec is None:
        return weights
    seen = set()
    for entry in spec.split(","):
        name, sep, value = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"--mix: {entry!r} is not NAME=WEIGHT (e.g. scifact=1,wikiqa=2)")
        if name not in weights:
            raise ValueError(f"--mix: unknown dataset {name!r}; the datasets are {names}")
        if name in seen:
            raise ValueError(f"--mix: dataset {name!r} given twice")
        try:
            weight = float(value)
        except ValueError:
            raise ValueError(f"--mix: weight of {name!r} is not a number: {value!r}") from None
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f"--mix: weight of {name!r} must be a number > 0, got {value!r}")
        weights[name] = weight
        seen.add(name)
    return weights


def selection_score(validation: dict[str, dict[str, float]], sets: list[TrainingSet]) -> float:
    """The macro-average that picks the kept epoch: every dataset's slot MAP, and nDCG@10 where it counts.

    Args:
        validation: dataset name -> its validation metrics.
        sets: the training sets (which say whether nDCG@10 counts).
    """
    cells = [validation[s.name]["slot_map"] for s in sets if s.name in validation]
    cells += [validation[s.name]["ndcg@10"] for s in sets if s.name in validation and s.rank_documents]
    return float(np.mean(cells)) if cells else float("nan")
