"""The public API: `SpicyLentil`, the relevance field of documents for a query.

A facade: the scoring machinery is in `scoring`, batch scheduling in `scheduling`, the result
types in `results`, model folders in `checkpoint`, the first stage in `corpus.first_stage`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from tqdm.auto import tqdm

from ..documents import as_document
from ..errors import ModelLoadError, check_count, check_query, check_threshold
from ..network.checkpoint import DEFAULT_MODEL_DIR, load_checkpoint, save_checkpoint
from ..network.config import SpicyLentilConfig
from ..network.encoder import Encoder
from ..network.model import SpicyLentilModel
from ..network.scoring import Scorer
from ..results import CompressedContext, PrunedDocument, RelevanceField, Selection
from ..slots import Slotter
from .search import CorpusSearch

PROGRESS_THRESHOLD = 256  # documents; `show_progress_bar=None` shows a bar from this many on


class SpicyLentil(CorpusSearch):
    """Query-driven relevance fields over document slots.

    Args:
        model: the network after the encoder.
        encoder: the sentence-transformers encoder it was built for.
    """

    def __init__(self, model: SpicyLentilModel, encoder: Encoder) -> None:
        from ..corpus.index import OpenedIndexes

        if encoder.dim != model.config.embedding_dim:
            raise ModelLoadError(
                f"encoder {encoder.name!r} gives {encoder.dim}-d embeddings, "
                f"the model expects {model.config.embedding_dim}"
            )
        self.model = model.eval()
        self.encoder = encoder
        self.config = model.config
        window = min(self.config.max_slot_tokens or encoder.max_tokens, encoder.max_tokens)
        self.slotter = Slotter(encoder.token_offsets, window, self.config.window_stride, self.config.max_slots)
        self.scorer = Scorer(self.model, encoder, self.slotter)
        self.routing_statistics = self.scorer.routing_statistics
        self.special_ids = self.scorer.special_ids
        # The k of calls that name none; the config's k stays what the model was trained and saved with.
        self._pathways_per_query = model.config.pathways_per_query
        self._indexes = OpenedIndexes()  # a folder `search` opened stays open while its manifest is unchanged

    # ---- construction and persistence -------------------------------------------------------

    @classmethod
    def new(
        cls,
        config: SpicyLentilConfig | None = None,
        seed: int = 0,
        device: str | None = None,
        encoder_weights: str | Path | None = None,
        reader_weights: str | Path | None = None,
    ) -> "SpicyLentil":
        """A randomly initialised model over the config's encoder (the starting point of training).

        Args:
            config: the model's configuration; None = the defaults.
            seed: torch seed of the initialisation.
            device: torch device; None lets sentence-transformers choose.
            encoder_weights: tuned encoder tensors (`encoder_tuning.tune_encoder`) applied over the encoder.
            reader_weights: the trained reader's tensors (`reader_training`), where `config.reader` names one.
        """
        config = config or SpicyLentilConfig()
        encoder = Encoder(config.encoder, device=device, weights=encoder_weights)
        config.vocab_size = encoder.vocab_size
        config.embedding_dim = encoder.dim
        torch.manual_seed(seed)
        model = SpicyLentilModel(config)
        if model.reader is not None and reader_weights is not None:
            model.reader.load_tuned(reader_weights)
        return cls(model, encoder)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None) -> "SpicyLentil":
        """Loads a model folder written by `save_pretrained` or `spicy-lentil train`.

        Args:
            path: the folder; None loads the bundled default model (offline, CPU).
            device: torch device for encoder and model; None = CPU.

        Raises:
            ModelLoadError: the folder is missing `config.json` or `model.safetensors`, or they disagree.
        """
        return cls(*load_checkpoint(Path(path) if path is not None else DEFAULT_MODEL_DIR, device or "cpu"))

    def save_pretrained(self, folder: str | Path, save_encoder: bool = False) -> None:
        """Writes `config.json` and `model.safetensors`, and the tuned encoder tensors when the encoder
        has them (`encoder.safetensors`), or the whole encoder under `encoder/` if asked.

        Args:
            folder: destination folder, created if needed.
            save_encoder: also save the encoder's weights (needed after `--train-encoder`).
        """
        save_checkpoint(Path(folder), self.model, self.encoder, save_encoder)

    # ---- the pathways and the gate's k --------------------------------------------------------

    @property
    def pathway_names(self) -> list[str]:
        """The model's pathways, in registry order (the order of gate weights and pathway attention)."""
        return list(self.model.pathway_names)

    @property
    def pathway_questions(self) -> dict[str, str]:
        """Each pathway's question: what it asks of a slot."""
        return {name: self.model.pathways[name].question for name in self.model.pathway_names}

    @property
    def pathways_per_query(self) -> int:
        """How many of the pathways each query is routed to (the gate's top-k)."""
        return self._pathways_per_query

    @pathways_per_query.setter
    def pathways_per_query(self, k: int) -> None:
        self._pathways_per_query = self._call_k(k)

    def _call_k(self, k: int | None) -> int:
        """A call's k: `pathways_per_query` when None, else checked. Passed per call, it leaves the
        shared default alone, so threads sharing this object may each use their own k."""
        if k is None:
            return self._pathways_per_query
        n = len(self.model.pathway_names)
        check_count(k, "pathways_per_query")
        if k > n:
            raise ValueError(f"pathways_per_query must be in 1..{n}, got {k}")
        return k

    def describe(self) -> dict[str, Any]:
        """What this model is: its encoder, the gate's k, the pathways and the calibration of each head."""
        return {
            "encoder": self.encoder.name,
            "encoder_weights": self.config.encoder_weights,
            "pathways_per_query": self.pathways_per_query,
            "pathways": self.pathway_names,
            "calibration": {
                "slot": self.model.slot_calibration.tolist(),
                "document": self.model.doc_calibration.tolist(),
                # True: a slot score is P(document answers) x P(slot answers | it does) (README, "What a score means")
                "slot_given_document": self.config.slot_given_document,
            },
        }

    # ---- scoring ----------------------------------------------------------------------------

    def field(self, query: str, document: str | dict, pathways_per_query: int | None = None) -> RelevanceField:
        """The relevance field of one document for a query.

        Args:
            query: the query text.
            document: a string, a list of sentences, or a dict with "text" (or "sentences") and optional
                "title" and "_id".
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            A `RelevanceField`; an empty document gives score 0.0 and no slots.
        """
        as_document(document, "document")
        return next(self.iter_fields(query, [document], pathways_per_query=pathways_per_query))

    def fields(
        self,
        query: str,
        documents: Iterable[str | dict],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        pathways_per_query: int | None = None,
    ) -> list[RelevanceField]:
        """Relevance fields of many documents, batched.

        Args:
            query: the query text.
            documents: strings, lists of sentences, or dicts with "text" or "sentences" (any iterable).
            batch_size: documents per model batch.
            show_progress_bar: show a tqdm bar; None shows one for long inputs.
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.
        """
        documents = _check_documents(documents)
        total = len(documents) if hasattr(documents, "__len__") else None
        if show_progress_bar is None:
            show_progress_bar = total is not None and total >= PROGRESS_THRESHOLD
        fields = self.iter_fields(query, documents, batch_size, pathways_per_query=pathways_per_query)
        return list(tqdm(fields, total=total, disable=not show_progress_bar, desc="fields", unit="doc"))

    def iter_fields(
        self,
        query: str,
        documents: Iterable[str | dict],
        batch_size: int = 32,
        cache_slots: bool = True,
        pathways_per_query: int | None = None,
    ) -> Iterator[RelevanceField]:
        """Yields relevance fields lazily, in input order, so any-size inputs stream.

        Args:
            query: the query text.
            documents: strings, lists of sentences, or dicts with "text" or "sentences" (any iterable).
            batch_size: documents per model batch.
            cache_slots: keep slot (and title) encodings in the encoder's cache for the next query.
                Off for one pass over many distinct documents (a score job): there the cache only
                churns memory, and peak memory grows with the input (BENCHMARKS.md, "Memory of a streaming
                score job").
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.
        """
        check_query(query)
        documents = _check_documents(documents)
        check_count(batch_size, "batch_size")
        return self.scorer.iter_fields(
            query, iter(documents), batch_size, cache_slots, self._call_k(pathways_per_query)
        )

    def score(
        self,
        query: str,
        documents: Iterable[str | dict],
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        pathways_per_query: int | None = None,
    ) -> list[float]:
        """Document scores in [0, 1], in input order; `pathways_per_query` is this call's k (None: the attribute)."""
        return [f.score for f in self.fields(query, documents, batch_size, show_progress_bar, pathways_per_query)]

    def rank(
        self,
        query: str,
        documents: Iterable[str | dict],
        top_k: int | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        pathways_per_query: int | None = None,
    ) -> list[dict[str, Any]]:
        """Documents ranked best first, sentence-transformers style.

        Args:
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            `[{"corpus_id": index in documents, "score": float, "text": str}]`, at most `top_k` entries.
        """
        documents = list(_check_documents(documents))
        check_count(top_k, "top_k", allow_none=True)
        scores = self.score(query, documents, batch_size, show_progress_bar, pathways_per_query)
        order = sorted(range(len(documents)), key=lambda i: -scores[i])[:top_k]
        return [
            {"corpus_id": i, "score": scores[i], "text": as_document(documents[i], f"documents[{i}]").text}
            for i in order
        ]

    # ---- selection --------------------------------------------------------------------------

    def compress(
        self,
        query: str,
        documents: Iterable[str | dict],
        budget_tokens: int | None = 512,
        batch_size: int = 32,
        pathways_per_query: int | None = None,
        threshold: float | None = None,
    ) -> CompressedContext:
        """The most relevant slots across documents that fit a token budget, kept in document order.

        Args:
            query: the query text.
            documents: strings, lists of sentences, or dicts with "text" or "sentences".
            budget_tokens: the most encoder tokens the kept slots may add up to; None for no budget (then
                `threshold` is required).
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.
            threshold: keep only slots scoring at least this (in [0, 1]); None keeps any slot that fits.
        """
        fields = self._fields_to_select(query, documents, budget_tokens, threshold, batch_size, pathways_per_query)
        return self._select(fields, budget_tokens, threshold).compressed()

    def prune(
        self,
        query: str,
        documents: Iterable[str | dict],
        threshold: float | None = None,
        budget_tokens: int | None = None,
        batch_size: int = 32,
        pathways_per_query: int | None = None,
    ) -> list[PrunedDocument]:
        """Each document pruned to its relevant sentences, Provence style: by score threshold, token budget, or both.

        Args:
            query: the query text.
            documents: strings, lists of sentences, or dicts with "text" or "sentences".
            threshold: keep the slots scoring at least this (in [0, 1]).
            budget_tokens: the most encoder tokens kept over all documents, best slots first.
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            One `PrunedDocument` per input document, in input order.
        """
        fields = self._fields_to_select(query, documents, budget_tokens, threshold, batch_size, pathways_per_query)
        return self._select(fields, budget_tokens, threshold).pruned(fields)

    def _fields_to_select(self, query, documents, budget_tokens, threshold, batch_size, k) -> list[RelevanceField]:
        check_count(budget_tokens, "budget_tokens", allow_none=True)
        check_threshold(threshold)
        if budget_tokens is None and threshold is None:
            raise ValueError("give a threshold, a budget_tokens, or both")
        return self.fields(query, documents, batch_size, pathways_per_query=k)

    def _select(self, fields: list[RelevanceField], budget_tokens: int | None, threshold: float | None) -> Selection:
        lengths = self.encoder.count_tokens([slot.text for f in fields for slot in f.slots])
        return Selection.choose(fields, lengths, budget_tokens, threshold)


def _check_documents(documents: Any) -> Iterable:
    if documents is None or isinstance(documents, (str, bytes, dict)):
        raise TypeError(
            f"documents must be an iterable of strings or dicts, got {type(documents).__name__}"
            + (" (wrap a single document in a list, or use field())" if isinstance(documents, (str, dict)) else "")
        )
    if not hasattr(documents, "__iter__"):
        raise TypeError(f"documents must be an iterable of strings or dicts, got {type(documents).__name__}")
    return documents
