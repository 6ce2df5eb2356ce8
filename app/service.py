"""One SpicyLentil shared by every browser session of the app, and the models it may offer."""

from __future__ import annotations

import os
import threading
from typing import Mapping, Sequence

from spicy_lentil import CompressedContext, RelevanceField, SpicyLentil
from spicy_lentil.runtime import configure

WARM_UP_QUERY = "warm up"
MODEL_ENV = "SPICY_LENTIL_MODEL"  # the model selected first ("" or unset: the bundled one)
MODEL_DIRS_ENV = "SPICY_LENTIL_MODEL_DIRS"  # every model folder offered, joined by os.pathsep
BUNDLED_LABEL = "bundled default model"


def model_choices(environ: Mapping[str, str]) -> list[str]:
    """The model folders the operator offers, the default first; "" stands for the bundled model."""
    default = environ.get(MODEL_ENV, "")
    offered = [d for d in environ.get(MODEL_DIRS_ENV, "").split(os.pathsep) if d]
    return list(dict.fromkeys([default, "", *offered]))


class SharedLentil:
    """One SpicyLentil for every session, one call at a time.

    Each call passes its own k, so sessions never see each other's; calls are still taken one at
    a time, which bounds the server's memory and CPU to one scoring however many visitors there are.
    """

    def __init__(self, lentil: SpicyLentil, folder: str) -> None:
        self.lentil = lentil
        self.folder = folder
        self.default_k = lentil.pathways_per_query
        self.names = lentil.pathway_names
        self.questions = lentil.pathway_questions
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | None, warm_corpus: Sequence[dict] = ()) -> "SharedLentil":
        """Loads the model and scores `warm_corpus` once, so its slots are encoded before the first query."""
        configure()
        lentil = SpicyLentil.from_pretrained(folder or None)
        shared = cls(lentil, folder or BUNDLED_LABEL)
        if warm_corpus:
            shared.fields(WARM_UP_QUERY, warm_corpus, shared.default_k)
        return shared

    def fields(self, query: str, documents: Sequence[dict], k: int) -> list[RelevanceField]:
        with self._lock:
            return self.lentil.fields(query, documents, show_progress_bar=False, pathways_per_query=k)

    def compress(self, query: str, documents: Sequence[dict], k: int, budget_tokens: int) -> CompressedContext:
        with self._lock:
            return self.lentil.compress(query, documents, budget_tokens=budget_tokens, pathways_per_query=k)

    def routing_statistics(self) -> dict:
        with self._lock:
            return self.lentil.routing_statistics.as_dict()
