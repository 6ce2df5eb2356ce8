"""One SpicyLentil shared by every browser session of the app."""

from __future__ import annotations

import threading
from typing import Sequence

from pathways import PATHWAYS
from spicy_lentil import CompressedContext, RelevanceField, SpicyLentil
from spicy_lentil.runtime import configure

WARM_UP_QUERY = "warm up"


class SharedLentil:
    """Serialises calls into one SpicyLentil.

    `pathways_per_query` is model state and the encoder's cache is a plain dict, so two sessions
    scoring at once with different k would otherwise see each other's k or corrupt the cache.
    """

    def __init__(self, lentil: SpicyLentil, folder: str) -> None:
        self.lentil = lentil
        self.folder = folder
        self.default_k = lentil.pathways_per_query
        self.names = list(lentil.model.pathway_names)
        self.questions = {name: PATHWAYS[name].question if name in PATHWAYS else "" for name in self.names}
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | None, warm_corpus: Sequence[dict] = ()) -> "SharedLentil":
        """Loads the model and scores `warm_corpus` once, so its slots are encoded before the first query."""
        configure()
        lentil = SpicyLentil.from_pretrained(folder or None)
        shared = cls(lentil, folder or "bundled default model")
        if warm_corpus:
            shared.fields(WARM_UP_QUERY, warm_corpus, shared.default_k)
        return shared

    def fields(self, query: str, documents: Sequence[dict], k: int) -> list[RelevanceField]:
        with self._lock:
            self.lentil.pathways_per_query = k
            return self.lentil.fields(query, documents, show_progress_bar=False)

    def compress(self, query: str, documents: Sequence[dict], k: int, budget_tokens: int) -> CompressedContext:
        with self._lock:
            self.lentil.pathways_per_query = k
            return self.lentil.compress(query, documents, budget_tokens=budget_tokens)

    def routing_statistics(self) -> dict:
        with self._lock:
            return self.lentil.routing_statistics.as_dict()
