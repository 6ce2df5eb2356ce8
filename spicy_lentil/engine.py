"""The public API: `SpicyLentil`, the relevance field of documents for a query."""

from __future__ import annotations

import itertools
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .batching import DocumentBatch, DocumentEncoding, collate
from .config import SpicyLentilConfig
from .encoder import Encoder, Encoding
from .errors import Document, ModelLoadError, as_document, check_count, check_query, check_threshold
from .gate import Routing, RoutingStatistics, routed_top_k
from .model import SpicyLentilModel
from .runtime import batch_workers, map_batches
from .slots import Slot, Slotter

if TYPE_CHECKING:
    from .index import CorpusIndex
    from .retrieval import FirstStage

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PROGRESS_THRESHOLD = 256  # documents; `show_progress_bar=None` shows a bar from this many on
LOOKAHEAD_BATCHES = 4  # batches read ahead by iter_fields: encoded together, then dealt into balanced batches
# Most tokens in one model batch. The batch's float32 token tensor then stays under glibc's 32 MB
# mmap ceiling (runtime.configure), so its memory is reused from batch to batch instead of mapped
# afresh, one page fault per 4 KiB, for each long batch.
MAX_BATCH_TOKENS = 16384


@dataclass
class RelevanceField:
    """A document's relevance to one query: per-slot scores, a document score and the routing behind them."""

    score: float  # document relevance in [0, 1]
    slots: list[Slot]  # slots in document order, each with its score in [0, 1]
    gate: dict[str, float]  # routing weight of every pathway; 0.0 for those that did not run
    active: list[str]  # the pathways that ran, highest weight first
    pathway_attention: list[dict[str, float]]  # per slot, the fusion's weight on each pathway
    truncated: bool = False  # the slot cap cut the document
    document_id: str | None = None  # the document's "_id" when it had one

    def to_dict(self) -> dict:
        """JSON-serialisable dict of the field."""
        return {
            "document_id": self.document_id,
            "score": self.score,
            "truncated": self.truncated,
            "active": list(self.active),
            "gate": dict(self.gate),
            "slots": [slot.to_dict() for slot in self.slots],
            "pathway_attention": [dict(a) for a in self.pathway_attention],
        }


@dataclass
class CompressedContext:
    """What `compress` keeps: the most relevant slots within a token budget, in document order."""

    text: str  # kept slots, documents separated by a blank line
    selected: list[tuple[int, Slot]] = field(default_factory=list)  # (document index, slot), in document order
    kept_tokens: int = 0
    total_tokens: int = 0

    @property
    def kept_share(self) -> float:
        return self.kept_tokens / self.total_tokens if self.total_tokens else 0.0

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "kept_tokens": self.kept_tokens,
            "total_tokens": self.total_tokens,
            "kept_share": self.kept_share,
            "selected": [{"document": i, **slot.to_dict()} for i, slot in self.selected],
        }


@dataclass
class PrunedDocument:
    """One document pruned to its relevant slots (`prune`)."""

    text: str  # the kept slots joined by one space
    kept: list[Slot]  # the kept slots, in document order, spans into the document's text
    score: float  # the document's relevance in [0, 1]
    kept_tokens: int
    total_tokens: int
    document_id: str | None = None

    @property
    def compression_rate(self) -> float:
        """The share of the document's tokens pruned away (0: all kept; 1: none kept)."""
        return 1.0 - self.kept_tokens / self.total_tokens if self.total_tokens else 0.0

    def to_dict(self) -> dict:
        return {
            "document_id": self.document_id,
            "text": self.text,
            "score": self.score,
            "kept": [slot.to_dict() for slot in self.kept],
            "kept_tokens": self.kept_tokens,
            "total_tokens": self.total_tokens,
            "compression_rate": self.compression_rate,
        }


@dataclass
class _Scored:
    """One document's model outputs, made into a `RelevanceField` only for the documents a caller keeps
    (a search returns 10 of the 100 it reranks; building the other fields' slot lists is wasted)."""

    score: float
    slot_scores: torch.Tensor  # (slots,) in [0, 1]; empty for an empty document
    attention: torch.Tensor  # (slots, pathways) the fusion's weight on each pathway
    gate: dict[str, float]
    active: list[str]
    document_id: str | None

    def field(self, split: tuple[list[Slot], bool], pathway_names: list[str]) -> RelevanceField:
        slots, truncated = split
        return RelevanceField(
            score=self.score,
            slots=[Slot(s.text, s.start, s.end, v) for s, v in zip(slots, self.slot_scores.tolist())],
            gate=self.gate,
            active=self.active,
            pathway_attention=[dict(zip(pathway_names, a)) for a in self.attention.tolist()],
            truncated=truncated,
            document_id=self.document_id,
        )


class SpicyLentil:
    """Query-driven relevance fields over document slots.

    Args:
        model: the network after the encoder.
        encoder: the sentence-transformers encoder it was built for.
    """

    def __init__(self, model: SpicyLentilModel, encoder: Encoder) -> None:
        if encoder.dim != model.config.embedding_dim:
            raise ModelLoadError(
                f"encoder {encoder.name!r} gives {encoder.dim}-d embeddings, the model expects {model.config.embedding_dim}"
            )
        self.model = model.eval()
        self.encoder = encoder
        self.config = model.config
        window = self.config.max_slot_tokens or encoder.max_tokens
        self.slotter = Slotter(encoder.token_offsets, min(window, encoder.max_tokens), self.config.window_stride, self.config.max_slots)
        self.routing_statistics = RoutingStatistics(model.pathway_names)
        self._statistics_lock = threading.Lock()
        self.special_ids = list(encoder.tokenizer.all_special_ids)
        # Indexes `search` opened by folder, each with the manifest bytes it was opened at: a folder
        # search is as fast as a loaded `CorpusIndex`, and a rebuilt index (new manifest) is reopened.
        self._indexes: dict[Path, tuple[bytes, "CorpusIndex"]] = {}
        self._indexes_lock = threading.Lock()

    # ---- construction and persistence -------------------------------------------------------

    @classmethod
    def new(cls, config: SpicyLentilConfig | None = None, seed: int = 0, device: str | None = None,
            encoder_weights: str | Path | None = None) -> "SpicyLentil":
        """A randomly initialised model over the config's encoder (the starting point of training).

        Args:
            config: the model's configuration; None = the defaults.
            seed: torch seed of the initialisation.
            device: torch device; None lets sentence-transformers choose.
            encoder_weights: tuned encoder tensors (`encoder_tuning.tune_encoder`) applied over the encoder.
        """
        config = config or SpicyLentilConfig()
        encoder = Encoder(config.encoder, device=device, weights=encoder_weights)
        config.vocab_size = encoder.vocab_size
        config.embedding_dim = encoder.dim
        torch.manual_seed(seed)
        return cls(SpicyLentilModel(config), encoder)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | None = None) -> "SpicyLentil":
        """Loads a model folder written by `save_pretrained` or `spicy-lentil train`.

        Args:
            path: the folder; None loads the bundled default model (offline, CPU).
            device: torch device for encoder and model; None = CPU.

        Raises:
            ModelLoadError: the folder is missing `config.json` or `model.safetensors`, or they disagree.
        """
        folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (folder / name).is_file():
                raise ModelLoadError(f"{folder} is not a Spicy Lentil model folder: {name} is missing")
        try:
            config = SpicyLentilConfig.load(folder / CONFIG_NAME)
        except (ValueError, TypeError) as error:
            raise ModelLoadError(f"{folder / CONFIG_NAME}: {error}") from error
        model = SpicyLentilModel(config)
        try:
            state = load_file(folder / WEIGHTS_NAME, device="cpu")
        except (SafetensorError, OSError, ValueError) as error:  # truncated, empty or not safetensors at all
            raise ModelLoadError(f"{folder / WEIGHTS_NAME} is not a readable safetensors file: {error}") from error
        damaged = sorted(name for name, tensor in state.items()
                         if tensor.is_floating_point() and not torch.isfinite(tensor).all())
        if damaged:
            raise ModelLoadError(f"{folder / WEIGHTS_NAME} holds NaN or infinite weights in {damaged[:5]}")
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelLoadError(f"{folder / WEIGHTS_NAME} does not fit {folder / CONFIG_NAME}: {error}") from error
        # The encoder loads last: the slowest step, and not worth taking for a folder found damaged.
        encoder_name = config.encoder
        if (folder / encoder_name).is_dir():  # an encoder fine-tuned with the head and saved beside it
            encoder_name = str(folder / encoder_name)
        weights = None
        if config.encoder_weights:
            weights = folder / config.encoder_weights
            if not weights.is_file() or weights.parent.resolve() != folder.resolve():
                raise ModelLoadError(f"{folder / CONFIG_NAME}: encoder_weights must name a file in the model folder")
        try:
            encoder = Encoder(encoder_name, device=device or "cpu", weights=weights)
        except (ValueError, SafetensorError, OSError) as error:
            raise ModelLoadError(f"{weights}: {error}") from error
        return cls(model.to(device or "cpu"), encoder)

    def save_pretrained(self, folder: str | Path, save_encoder: bool = False) -> None:
        """Writes `config.json` and `model.safetensors`, and the tuned encoder tensors when the encoder
        has them (`encoder.safetensors`), or the whole encoder under `encoder/` if asked.

        Args:
            folder: destination folder, created if needed.
            save_encoder: also save the encoder's weights (needed after `--train-encoder`).
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = SpicyLentilConfig(**self.config.to_dict())
        config.encoder_weights = ""
        if save_encoder:
            self.encoder.model.save(str(folder / "encoder"), safe_serialization=True)
            config.encoder = "encoder"
        elif self.encoder.weights is not None:
            target = folder / self.encoder.weights.name
            if target.resolve() != self.encoder.weights.resolve():
                shutil.copyfile(self.encoder.weights, target)
            config.encoder_weights = target.name
        config.save(folder / CONFIG_NAME)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(state, folder / WEIGHTS_NAME, metadata={"format": "pt", "library": "spicy-lentil"})

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
        return self.model.top_k

    @pathways_per_query.setter
    def pathways_per_query(self, k: int) -> None:
        self.model.top_k = self._call_k(k)

    def _call_k(self, k: int | None) -> int:
        """A call's k: `pathways_per_query` when None, else checked. Passed per call, it leaves the
        shared default alone, so threads sharing this object may each use their own k."""
        if k is None:
            return self.model.top_k
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
            "calibration": {"slot": self.model.slot_calibration.tolist(),
                            "document": self.model.doc_calibration.tolist()},
        }

    # ---- scoring ----------------------------------------------------------------------------

    def field(self, query: str, document: str | dict, pathways_per_query: int | None = None) -> RelevanceField:
        """The relevance field of one document for a query.

        Args:
            query: the query text.
            document: a string, or a dict with "text" and optional "title" and "_id".
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            A `RelevanceField`; an empty document gives score 0.0 and no slots.
        """
        as_document(document, "document")
        return next(self.iter_fields(query, [document], pathways_per_query=pathways_per_query))

    def fields(
        self, query: str, documents: Iterable[str | dict], batch_size: int = 32, show_progress_bar: bool | None = None,
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
        return list(
            tqdm(self.iter_fields(query, documents, batch_size, pathways_per_query=pathways_per_query), total=total,
                 disable=not show_progress_bar, desc="fields", unit="doc")
        )

    def iter_fields(
        self, query: str, documents: Iterable[str | dict], batch_size: int = 32, cache_slots: bool = True,
        pathways_per_query: int | None = None,
    ) -> Iterator[RelevanceField]:
        """Yields relevance fields lazily, in input order, so any-size inputs stream.

        Args:
            query: the query text.
            documents: strings, lists of sentences, or dicts with "text" or "sentences" (any iterable).
            batch_size: documents per model batch.
            cache_slots: keep slot (and title) encodings in the encoder's cache for the next query.
                Off for one pass over many distinct documents (a score job): there the cache only
                churns memory, and peak memory grows with the input (BENCHMARKS.md, "Memory of a streaming score job").
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.
        """
        check_query(query)
        documents = _check_documents(documents)
        check_count(batch_size, "batch_size")
        k = self._call_k(pathways_per_query)
        return self._iter_fields(query, iter(documents), batch_size, cache_slots, k)

    def _iter_fields(self, query: str, documents: Iterator, batch_size: int, cache_slots: bool,
                     k: int) -> Iterator[RelevanceField]:
        query_encoding, routing = self._encode_and_route(query, k)
        # Titles are encoded only when the query is routed to a pathway that reads them.
        wants_titles = any(self.model.pathways[name].reads_titles for name in routing[1])
        # Read a few batches ahead: the encoder batches their slots by length, and the model's batches
        # share the work evenly (`_balanced_batches`); results still come out in input order.
        window = batch_size * LOOKAHEAD_BATCHES
        for chunk_start in itertools.count(0, window):
            chunk = list(itertools.islice(documents, window))
            if not chunk:
                return
            parsed = [as_document(doc, f"documents[{chunk_start + i}]") for i, doc in enumerate(chunk)]
            split = [self._split(document) for document in parsed]
            slot_encodings = iter(self.encoder.encode([s.text for slots, _ in split for s in slots], use_cache=cache_slots))
            encodings = [DocumentEncoding.pack([next(slot_encodings) for _ in slots]) if slots else None for slots, _ in split]
            titles = list(dict.fromkeys(d.title for d in parsed if d.title)) if wants_titles else []
            title_encodings = dict(zip(titles, self.encoder.encode(titles, use_cache=cache_slots)))
            scored = self._score_batched(
                query_encoding, len(chunk), batch_size, k, routing,
                documents=lambda rows: DocumentBatch.pack([encodings[i] for i in rows]),
                title=lambda i: title_encodings.get(parsed[i].title),
                doc_id=lambda i: parsed[i].id,
                tokens=lambda i: encodings[i].tokens.shape[0] if encodings[i] is not None else 0,
            )
            yield from (result.field(split[i], self.model.pathway_names) for i, result in enumerate(scored))

    def _split(self, document: Document) -> tuple[list[Slot], bool]:
        if document.sentences is None:
            return self.slotter.split(document.text)
        return self.slotter.split_known(document.text, document.sentences)

    def encode_query(self, query: str, pathways_per_query: int | None = None) -> Encoding:
        """The query's encoding (sentence and token embeddings), as `rerank_indexed` takes it; its routing
        (with the given k, None = the attribute) is counted in `routing_statistics`."""
        return self._encode_and_route(query, self._call_k(pathways_per_query))[0]

    def _encode_and_route(self, query: str, k: int) -> tuple[Encoding, tuple[dict[str, float], list[str]]]:
        """The query's encoding and its routing (gate weights, active pathways), the gate run once;
        the routing is counted in `routing_statistics`."""
        encoding = self.encoder.encode([query])[0]
        routing = self._route(encoding, k)
        with self._statistics_lock:  # its running sums are read-modify-write
            self.routing_statistics.update(routing)
        return encoding, self._gate_summary(routing)

    def _route(self, query_encoding: Encoding, k: int | None) -> Routing:
        with torch.inference_mode(), routed_top_k(k):
            return self.model.gate(query_encoding.embedding.unsqueeze(0).to(self.model.slot_head.weight.device))

    def _score_documents(self, query_encoding, documents: DocumentBatch, titles, prior=None) -> list[tuple[float, torch.Tensor, torch.Tensor]]:
        """Runs the model on documents whose slots are already encoded (none empty): per document, its
        score, slot scores `(slots,)` and pathway attention `(slots, pathways)`."""
        device = self.model.slot_head.weight.device
        with torch.inference_mode():
            batch = collate([query_encoding] * len(documents), documents, titles, self.special_ids).to(device)
            output = self.model(batch, None if prior is None else torch.as_tensor(prior, device=device))
        slot_scores, doc_scores, attention = output.field.cpu(), output.score.cpu().tolist(), output.pathway_attention.cpu()
        return [(doc_scores[row], slot_scores[row, :n], attention[row, :n]) for row, n in enumerate(documents.slot_counts.tolist())]

    def _gate_summary(self, routing) -> tuple[dict[str, float], list[str]]:
        weights = routing.dense_weights[0].tolist()
        gate = dict(zip(self.model.pathway_names, weights))
        active = [self.model.pathway_names[i] for i in routing.selected_pathways[0].tolist()]
        return gate, active

    def score(self, query: str, documents: Iterable[str | dict], batch_size: int = 32,
              show_progress_bar: bool | None = None, pathways_per_query: int | None = None) -> list[float]:
        """Document scores in [0, 1], in input order; `pathways_per_query` is this call's k (None: the attribute)."""
        return [f.score for f in self.fields(query, documents, batch_size, show_progress_bar, pathways_per_query)]

    def rank(
        self, query: str, documents: Iterable[str | dict], top_k: int | None = None, batch_size: int = 32,
        show_progress_bar: bool | None = None, pathways_per_query: int | None = None,
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
        return [{"corpus_id": i, "score": scores[i], "text": as_document(documents[i], f"documents[{i}]").text} for i in order]

    def search(
        self, index: "CorpusIndex | str | Path", query: str, top_k: int = 10, candidates: int = 100,
        batch_size: int = 64, first_stage: "FirstStage | None" = None, pathways_per_query: int | None = None,
    ) -> list[dict[str, Any]]:
        """Searches a corpus indexed once: first stage (BM25 + dense fusion), then rerank with relevance fields.

        Args:
            index: a `CorpusIndex` or its folder (built with this model's encoder and slotter).
            query: the query text.
            top_k: results returned.
            candidates: first-stage documents reranked.
            batch_size: most documents per model batch (on 2 cores, 100 candidates run as two batches side by side).
            first_stage: fusion weights; default equal weights.
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.

        Returns:
            `[{"corpus_id", "score", "text", "title", "first_stage", "field"}]`, best first; "field" is the
            document's `RelevanceField`, its slots with spans into "text".

        Raises:
            StaleIndexError: the index was built with another encoder or slotter setting.
        """
        from .index import CorpusIndex
        from .retrieval import FirstStage

        check_query(query)
        for name, value in (("top_k", top_k), ("candidates", candidates), ("batch_size", batch_size)):
            check_count(value, name)
        k = self._call_k(pathways_per_query)
        if not isinstance(index, CorpusIndex):
            index = self._open_index(Path(index))
        first_stage = first_stage or FirstStage()
        query_encoding, routing = self._encode_and_route(query, k)
        signals = first_stage.signals(index, query, query_encoding.embedding.numpy())
        docs = first_stage.candidates(signals, max(candidates, top_k))
        scored = self._rerank_indexed(query_encoding, index, docs, first_stage.prior(signals, docs), batch_size, k,
                                      routing)
        order = sorted(range(len(docs)), key=lambda r: -scored[r].score)[:top_k]
        results = []
        for r in order:
            doc = index.document(int(docs[r]))
            field = scored[r].field(index.slots(int(docs[r])), self.model.pathway_names)
            results.append({"corpus_id": doc["_id"], "score": field.score, "text": doc["text"], "title": doc["title"],
                            "first_stage": float(signals["fusion"][docs[r]]), "field": field})
        return results

    def _open_index(self, folder: Path) -> "CorpusIndex":
        """The index in `folder`, opened once and kept while its manifest stays the same."""
        from .index import MANIFEST, CorpusIndex

        folder = folder.resolve()
        try:
            manifest = (folder / MANIFEST).read_bytes()
        except OSError:
            manifest = None  # CorpusIndex.load names what is missing
        with self._indexes_lock:
            kept = self._indexes.get(folder)
            if manifest is not None and kept is not None and kept[0] == manifest:
                return kept[1]
            index = CorpusIndex.load(folder, self.encoder, self.slotter)
            self._indexes[folder] = (manifest, index)
            return index

    def rerank_indexed(self, query_encoding, index: "CorpusIndex", docs, prior=None, batch_size: int = 64,
                       pathways_per_query: int | None = None) -> list[RelevanceField]:
        """Fields of indexed documents (by position) from their stored encodings: no encoder runs over documents."""
        scored = self._rerank_indexed(query_encoding, index, docs, prior, batch_size, self._call_k(pathways_per_query))
        return [result.field(index.slots(int(i)), self.model.pathway_names) for result, i in zip(scored, docs)]

    def _rerank_indexed(self, query_encoding, index: "CorpusIndex", docs, prior, batch_size: int,
                        k: int | None, routing: tuple[dict[str, float], list[str]] | None = None) -> list[_Scored]:
        docs = [int(i) for i in docs]
        return self._score_batched(
            query_encoding, len(docs), batch_size, k, routing,
            documents=lambda rows: index.document_batch([docs[r] for r in rows]),
            title=lambda r: index.title_encoding(docs[r]),
            doc_id=lambda r: index.doc_ids[docs[r]],
            tokens=lambda r: index.token_count(docs[r]),
            prior=prior,
        )

    def _score_batched(self, query_encoding, count, batch_size, k, routing, documents, title, doc_id, tokens,
                       prior=None) -> list[_Scored]:
        """Scores `count` documents in balanced batches (`_balanced_batches`), returned in input order,
        routed to `k` pathways (None: the attribute's default); `routing` is the query's gate summary
        when the caller has it, else the gate runs here.

        `documents(rows)` gives the rows' `DocumentBatch`; `title`, `doc_id` and `tokens` (its token
        count: 0 for an empty document, which gets the neutral result without the model) one row's.
        """
        gate, active = routing or self._gate_summary(self._route(query_encoding, k))
        with routed_top_k(k):
            return self._score_routed(query_encoding, count, batch_size, documents, title, doc_id, tokens, prior,
                                      gate, active)

    def _score_routed(self, query_encoding, count, batch_size, documents, title, doc_id, tokens,
                      prior, gate, active) -> list[_Scored]:
        pathways = len(self.model.pathway_names)
        results = [_Scored(0.0, torch.zeros(0), torch.zeros(0, pathways), gate, active, doc_id(r)) for r in range(count)]
        token_counts = [tokens(r) for r in range(count)]  # read once: sorting and dealing read them again and again
        order = sorted((r for r in range(count) if token_counts[r] > 0), key=token_counts.__getitem__)
        batches = _balanced_batches(order, token_counts.__getitem__, batch_size, MAX_BATCH_TOKENS, batch_workers())

        def score(rows: list[int]) -> list[tuple[float, torch.Tensor, torch.Tensor]]:
            return self._score_documents(query_encoding, documents(rows), [title(r) for r in rows], None if prior is None else prior[rows])

        for rows, scored in zip(batches, map_batches(score, batches)):
            for r, (doc_score, slot_scores, attention) in zip(rows, scored):
                results[r] = _Scored(doc_score, slot_scores, attention, gate, active, results[r].document_id)
        return results

    def compress(self, query: str, documents: Iterable[str | dict], budget_tokens: int | None = 512, batch_size: int = 32,
                 pathways_per_query: int | None = None, threshold: float | None = None) -> CompressedContext:
        """The most relevant slots across documents that fit a token budget, kept in document order.

        Args:
            query: the query text.
            documents: strings, lists of sentences, or dicts with "text" or "sentences".
            budget_tokens: the most encoder tokens the kept slots may add up to; None for no budget (then
                `threshold` is required).
            pathways_per_query: this call's k; None = the `pathways_per_query` attribute.
            threshold: keep only slots scoring at least this (in [0, 1]); None keeps any slot that fits.
        """
        _check_selection(budget_tokens, threshold)
        fields = self.fields(query, documents, batch_size, pathways_per_query=pathways_per_query)
        candidates, lengths, kept = self._select(fields, budget_tokens, threshold)
        selected = [candidates[j] for j in kept]
        by_doc: dict[int, list[str]] = {}
        for d, slot in selected:
            by_doc.setdefault(d, []).append(slot.text)
        text = "\n\n".join(" ".join(parts) for parts in by_doc.values())
        return CompressedContext(text, selected, sum(lengths[j] for j in kept), sum(lengths))

    def prune(self, query: str, documents: Iterable[str | dict], threshold: float | None = None,
              budget_tokens: int | None = None, batch_size: int = 32,
              pathways_per_query: int | None = None) -> list[PrunedDocument]:
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
        _check_selection(budget_tokens, threshold)
        fields = self.fields(query, documents, batch_size, pathways_per_query=pathways_per_query)
        candidates, lengths, kept = self._select(fields, budget_tokens, threshold)
        kept_slots: list[list[Slot]] = [[] for _ in fields]
        kept_tokens, total_tokens = [0] * len(fields), [0] * len(fields)
        for j, (d, _) in enumerate(candidates):
            total_tokens[d] += lengths[j]
        for j in kept:
            d, slot = candidates[j]
            kept_slots[d].append(slot)
            kept_tokens[d] += lengths[j]
        return [PrunedDocument(" ".join(s.text for s in kept_slots[d]), kept_slots[d], f.score, kept_tokens[d],
                               total_tokens[d], f.document_id) for d, f in enumerate(fields)]

    def _select(self, fields: list[RelevanceField], budget_tokens: int | None,
                threshold: float | None) -> tuple[list[tuple[int, Slot]], list[int], list[int]]:
        """(every (document, slot), its token count, the kept candidates in document order): best slots first,
        each at least `threshold`, while they fit `budget_tokens`."""
        candidates = [(d, slot) for d, f in enumerate(fields) for slot in f.slots]
        lengths = self.encoder.count_tokens([slot.text for _, slot in candidates])
        kept, used = [], 0
        for j in sorted(range(len(candidates)), key=lambda j: -candidates[j][1].score):
            if threshold is not None and candidates[j][1].score < threshold:
                break
            if budget_tokens is None or used + lengths[j] <= budget_tokens:
                kept.append(j)
                used += lengths[j]
        kept.sort(key=lambda j: (candidates[j][0], candidates[j][1].start))
        return candidates, lengths, kept


def _balanced_batches(order: list[int], tokens: Callable[[int], int], batch_size: int, max_tokens: int, workers: int) -> list[list[int]]:
    """Deals rows sorted by token count out to the fewest batches of at most `batch_size` rows and
    `max_tokens` tokens, a multiple of `workers` of them; a row over `max_tokens` goes alone.

    Dealt in turn, every batch gets rows of every length, so batches running side by side finish
    together; and fewer, larger batches pay the per-batch cost (a few hundred operator calls, most
    of them Python holding the GIL the other worker also needs) fewer times: a search's 100
    candidates run as one batch per worker.
    """
    alone = [[r] for r in order if tokens(r) > max_tokens]
    order = [r for r in order if tokens(r) <= max_tokens]
    if not order:
        return alone
    n = max(-(-len(order) // batch_size), -(-sum(tokens(r) for r in order) // max_tokens))
    n = -(-n // workers) * workers
    while True:
        batches = [order[i::n] for i in range(min(n, len(order)))]
        if n >= len(order) or all(sum(tokens(r) for r in b) <= max_tokens for b in batches):
            return alone + batches
        n += 1


def _check_selection(budget_tokens: Any, threshold: Any) -> None:
    check_count(budget_tokens, "budget_tokens", allow_none=True)
    check_threshold(threshold)
    if budget_tokens is None and threshold is None:
        raise ValueError("give a threshold, a budget_tokens, or both")


def _check_documents(documents: Any) -> Iterable:
    if documents is None or isinstance(documents, (str, bytes, dict)):
        raise TypeError(
            f"documents must be an iterable of strings or dicts, got {type(documents).__name__}"
            + (" (wrap a single document in a list, or use field())" if isinstance(documents, (str, dict)) else "")
        )
    if not hasattr(documents, "__iter__"):
        raise TypeError(f"documents must be an iterable of strings or dicts, got {type(documents).__name__}")
    return documents
