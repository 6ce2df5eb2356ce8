"""The machinery under the facade: encode a query and route it once, encode documents' slots, and
run the model over scheduled batches of any `DocumentSource`."""

from __future__ import annotations

import itertools
import threading
from typing import Iterator, NamedTuple

import numpy as np
import torch

from ..documents import Document, as_document
from ..results import RelevanceField, ScoredDocument
from ..runtime import map_batches
from ..slots import Slot, Slotter
from .batching import DocumentEncoding, collate
from .encoder import Encoder, Encoding
from .gate import Routing, RoutingStatistics
from .model import SpicyLentilModel
from .scheduling import DocumentSource, EncodedDocuments, schedule

LOOKAHEAD_BATCHES = 4  # batches read ahead by iter_fields: encoded together, then dealt into balanced batches


def fusion_gap(prior: np.ndarray) -> np.ndarray:
    """(n,) how far each candidate's fusion (the prior's last column) stands below the best of them, 0 where
    a row has no prior (NaN): what `SpicyLentilModel.first_stage_trust` weighs."""
    known = ~np.isnan(prior).any(axis=1)
    fusion = prior[:, -1].astype(np.float64)
    best = fusion[known].max() if known.any() else 0.0
    return np.where(known, best - fusion, 0.0).astype(np.float32)


class QueryRouting(NamedTuple):
    """One query's routing as the results report it."""

    gate: dict[str, float]  # routing weight of every pathway; 0.0 for those that did not run
    active: list[str]  # the pathways that run, highest weight first


class Scorer:
    """Scores documents for queries with one model, encoder and slotter; shared by threads."""

    def __init__(self, model: SpicyLentilModel, encoder: Encoder, slotter: Slotter) -> None:
        self.model = model
        self.encoder = encoder
        self.slotter = slotter
        self.special_ids = list(encoder.tokenizer.all_special_ids)
        self.routing_statistics = RoutingStatistics(model.pathway_names)
        self._statistics_lock = threading.Lock()

    def encode_and_route(self, query: str, k: int) -> tuple[Encoding, QueryRouting]:
        """The query's encoding and its routing to `k` pathways, the gate run once; the routing is
        counted in `routing_statistics`."""
        encoding = self.encoder.encode([query])[0]
        routing = self._gate(encoding, k)
        with self._statistics_lock:  # its running sums are read-modify-write
            self.routing_statistics.update(routing)
        return encoding, self._summary(routing)

    def route(self, query_encoding: Encoding, k: int) -> QueryRouting:
        """The query's routing to `k` pathways, not counted in `routing_statistics`."""
        return self._summary(self._gate(query_encoding, k))

    def iter_fields(
        self, query: str, documents: Iterator, batch_size: int, cache_slots: bool, k: int
    ) -> Iterator[RelevanceField]:
        """Fields of `documents` (checked one by one as they come) in input order, a few batches read ahead."""
        query_encoding, routing = self.encode_and_route(query, k)
        # Titles are encoded only when the query is routed to a pathway that reads them.
        wants_titles = any(self.model.pathways[name].reads_titles for name in routing.active)
        # Read a few batches ahead: the encoder batches their slots by length, and the model's batches
        # share the work evenly (`scheduling.balanced_batches`); results still come out in input order.
        window = batch_size * LOOKAHEAD_BATCHES
        for chunk_start in itertools.count(0, window):
            chunk = list(itertools.islice(documents, window))
            if not chunk:
                return
            parsed = [as_document(doc, f"documents[{chunk_start + i}]") for i, doc in enumerate(chunk)]
            split = [self.split(document) for document in parsed]
            slot_texts = [s.text for slots, _ in split for s in slots]
            slot_encodings = iter(self.encoder.encode(slot_texts, use_cache=cache_slots))
            encodings = [
                DocumentEncoding.pack([next(slot_encodings) for _ in slots]) if slots else None for slots, _ in split
            ]
            titles = list(dict.fromkeys(d.title for d in parsed if d.title)) if wants_titles else []
            title_encodings = dict(zip(titles, self.encoder.encode(titles, use_cache=cache_slots)))
            source = EncodedDocuments(encodings, [title_encodings.get(d.title) for d in parsed], [d.id for d in parsed])
            scored = self.score(query_encoding, source, batch_size, k, routing)
            yield from (result.field(split[i], self.model.pathway_names) for i, result in enumerate(scored))

    def split(self, document: Document) -> tuple[list[Slot], bool]:
        """The document's slots (its own sentences when it came pre-split) and whether the cap cut them."""
        if document.sentences is None:
            return self.slotter.split(document.text)
        return self.slotter.split_known(document.text, document.sentences)

    def score(
        self,
        query_encoding: Encoding,
        source: DocumentSource,
        batch_size: int,
        k: int,
        routing: QueryRouting | None = None,
        prior=None,
    ) -> list[ScoredDocument]:
        """Scores every row of `source` in balanced batches, in row order, routed to `k` pathways.

        Args:
            routing: the query's routing when the caller has it; None runs the gate here.
            prior: (rows, prior_features) first-stage features, or None.
        """
        gate, active = routing or self.route(query_encoding, k)
        pathways = len(self.model.pathway_names)
        results = [
            ScoredDocument(0.0, torch.zeros(0), torch.zeros(0, pathways), gate, active, source.document_id(r))
            for r in range(len(source))
        ]
        batches = schedule(source, batch_size)
        prior = None if prior is None else np.asarray(prior, dtype=np.float32)
        gap = None if prior is None else fusion_gap(prior)  # over all of this query's candidates, not a batch's

        def run(rows: list[int]) -> list[tuple[float, torch.Tensor, torch.Tensor]]:
            titles = [source.title(r) for r in rows]
            if prior is None:
                return self._run_model(query_encoding, source.batch(rows), titles, k)
            return self._run_model(query_encoding, source.batch(rows), titles, k, prior[rows], gap[rows])

        for rows, scored in zip(batches, map_batches(run, batches)):
            for r, (doc_score, slot_scores, attention) in zip(rows, scored):
                results[r] = ScoredDocument(doc_score, slot_scores, attention, gate, active, results[r].document_id)
        return results

    def _run_model(
        self, query_encoding, documents, titles, k, prior=None, gap=None
    ) -> list[tuple[float, torch.Tensor, torch.Tensor]]:
        """Per document (none empty): its score, slot scores `(slots,)` and pathway attention `(slots, pathways)`."""
        device = self.model.slot_head.weight.device
        with torch.inference_mode():
            batch = collate([query_encoding] * len(documents), documents, titles, self.special_ids).to(device)
            output = self.model(
                batch,
                None if prior is None else torch.as_tensor(prior, device=device),
                None if gap is None else torch.as_tensor(gap, device=device),
                k,
            )
        slot_scores, attention = output.field.cpu(), output.pathway_attention.cpu()
        doc_scores = output.score.cpu().tolist()
        counts = documents.slot_counts.tolist()
        return [(doc_scores[row], slot_scores[row, :n], attention[row, :n]) for row, n in enumerate(counts)]

    def _gate(self, query_encoding: Encoding, k: int) -> Routing:
        with torch.inference_mode():
            return self.model.gate(query_encoding.embedding.unsqueeze(0).to(self.model.slot_head.weight.device), k)

    def _summary(self, routing: Routing) -> QueryRouting:
        names = self.model.pathway_names
        gate = dict(zip(names, routing.dense_weights[0].tolist()))
        return QueryRouting(gate, [names[i] for i in routing.selected_pathways[0].tolist()])
