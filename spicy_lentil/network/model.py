"""The Spicy Lentil network: gate -> active pathways -> fusion (null point) -> relevance field and document score."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..pathways.base import PathwayInput, masked_mean, real_slots
from ..pathways.registry import build_pathways
from .config import SpicyLentilConfig
from .evidence import ZeroShotEvidence
from .fusion import build_fusion
from .gate import Gate, Routing
from .pooling import POOLING_CLASSES
from .reader import Reader, load_backbone


@dataclass
class ModelOutput:
    slot_logits: torch.Tensor  # (batch, slots) the slot head's logits, what the losses train; padding -inf
    doc_logits: torch.Tensor  # (batch,) calibrated document logits
    field: torch.Tensor  # (batch, slots) calibrated slot relevance in [0, 1]; 0 on padding
    routing: Routing
    pathway_attention: torch.Tensor  # (batch, slots, pathways) the fusion's weight on each pathway
    pooling_weights: torch.Tensor  # (batch, slots) how much each slot counts in the document score
    stance_logits: torch.Tensor | None  # (batch, slots, stances) where a stance-judging pathway ran, else None
    stance_rows: torch.Tensor | None  # (rows,) batch rows that stance_logits' rows belong to

    @property
    def score(self) -> torch.Tensor:
        """(batch,) document relevance in [0, 1]."""
        return torch.sigmoid(self.doc_logits)


def slot_margins(raw_slot: torch.Tensor, slot_mask: torch.Tensor) -> torch.Tensor:
    """(batch, slots) how far each slot's logit stands above the best *other* real slot of its row: the best
    slot's lead over the runner-up, and for every other slot its (negative) distance to the best; +inf for
    a row's only slot. Monotone in the logit within a row, so rankings inside a document are kept."""
    masked = raw_slot.masked_fill(~slot_mask, float("-inf"))
    if masked.shape[-1] < 2:
        masked = torch.cat([masked, masked.new_full((*masked.shape[:-1], 1), float("-inf"))], dim=-1)
    top = masked.topk(2, dim=-1).values  # (batch, 2)
    best, runner_up = top[..., :1], top[..., 1:]
    return raw_slot - torch.where(raw_slot >= best, runner_up, best)


def slot_probability(
    raw_slot: torch.Tensor,
    slot_mask: torch.Tensor,
    doc_logits: torch.Tensor,
    slot_calibration: torch.Tensor,
    given_document: bool,
) -> torch.Tensor:
    """Calibrated slot scores `(batch, slots)` from raw slot logits, the real-slot mask, the calibrated
    document logits `(batch,)` and the slot scaling `(scale, shift)`; padding is not masked here.

    With `given_document` a score is the document's probability of answering times the slot's
    probability of being an answer within an answering document; the second factor reads only the
    slot's margin over the rest of its document (`slot_margins`). The model's ranking inside a document
    transfers across domains; the level of its slot logits does not (a domain whose answers the head
    scores lower would get probabilities near zero whatever 0.5 means elsewhere). Without it, Platt
    scaling of the raw slot logit.
    """
    scale, shift = slot_calibration[0], slot_calibration[1]
    if not given_document:
        return torch.sigmoid(raw_slot * scale + shift)
    within = torch.sigmoid(slot_margins(raw_slot, slot_mask) * scale + shift)
    return torch.sigmoid(doc_logits).unsqueeze(-1) * within


class SpicyLentilModel(nn.Module):
    """The trainable part of Spicy Lentil (everything after the encoder).

    Args:
        config: the model's configuration.
    """

    def __init__(self, config: SpicyLentilConfig) -> None:
        super().__init__()
        self.config = config
        self.pathway_names = list(config.pathways)
        self.pathways = nn.ModuleDict(
            build_pathways(
                self.pathway_names,
                config.embedding_dim,
                config.hidden_dim,
                config.dropout,
                vocab_size=config.vocab_size,
                num_stances=config.num_stances,
            )
        )
        self.gate = Gate(config.embedding_dim, config.num_pathways, config.pathways_per_query, config.router_noise)
        self.fusion = build_fusion(config.fusion, config.num_pathways, config.hidden_dim, config.dropout)
        # Optionally the slot head also reads the slot's state minus the document's mean state (rationale
        # selection as a ranking within the document), and a query-independent salience per slot. Both
        # learn a corpus's layout (where its findings sit), so they are off unless a config asks.
        self.slot_head = nn.Linear((2 if config.slot_contrast else 1) * config.hidden_dim, 1)
        self.salience = nn.Linear(config.embedding_dim, 1) if config.slot_salience else None
        self.pooling = POOLING_CLASSES[config.pooling](config.embedding_dim, config.hidden_dim)
        # The document head also reads the first-stage prior when reranking a corpus (z-scored BM25
        # and dense signals) and a flag saying whether there is one: trained with the prior dropped
        # half the time, the same model scores bare documents and reranks corpus candidates.
        doc_in = config.hidden_dim + 2 + config.prior_features + 1
        self.doc_head = nn.Sequential(nn.Linear(doc_in, config.hidden_dim), nn.GELU(), nn.Linear(config.hidden_dim, 1))
        if config.zero_shot_residual:
            # Fail-safe: scores start from the zero-shot evidence, and the pathways' corrections start
            # at zero (ReZero-style), so an untrained or unsure head reproduces the evidence.
            self.evidence = ZeroShotEvidence(config.vocab_size)
            # The document's evidence: its best slot logit and, when reranking, the first-stage fusion.
            self.doc_evidence = nn.Linear(2, 1)
            with torch.no_grad():
                self.doc_evidence.weight.copy_(torch.tensor([[1.0, 0.0]]))
                self.doc_evidence.bias.zero_()
                for head in (self.slot_head, self.doc_head[-1]):
                    head.weight.zero_()
                    head.bias.zero_()
        # Platt scaling (scale, shift) of slot and document logits, fitted after training; with
        # `config.slot_given_document` the slot scaling reads the slot's margin over the rest of its document.
        self.register_buffer("slot_calibration", torch.tensor([1.0, 0.0]))
        self.register_buffer("doc_calibration", torch.tensor([1.0, 0.0]))
        # A reranked candidate's logit loses `first_stage_trust` per unit of first-stage fusion it stands
        # below its query's best candidate, fitted after training by nDCG@10 on the splits whose corpus
        # ranking counts (`calibration.fit_first_stage_trust`): the losses see a few sampled negatives per
        # query, never a whole candidate list, and leave the head trusting itself over the first stage.
        # Measured from the query's best candidate, not from an absolute fusion level, because z-scored
        # fusion levels grow with the corpus: the best candidate and a document scored alone keep the
        # head's own score in a corpus of any size. 0 leaves the head's score alone.
        self.register_buffer("first_stage_trust", torch.tensor([0.0]))
        # The reader (a cross-encoder, config.reader) and how its logits join the head's, fitted with the
        # calibration (`calibration.fit_reader_mix`): (weight of a slot's reader logit in its slot logit, weight of
        # the document's best reader logit in its document logit). (0, 0) never runs the reader.
        self.reader = (
            Reader(*load_backbone(config.reader), config.reader_max_tokens) if config.reader else None
        )
        self.register_buffer("reader_mix", torch.tensor([0.0, 0.0]))

    def _pathways_by_row(
        self, x: PathwayInput, routing: Routing
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Runs each pathway on the rows that selected it: the active outputs `(batch, slots, k, hidden)`.

        Also returns the stance logits of the pathway that judges stance and the rows they belong to
        (None where it did not run).
        """
        batch, slots = x.slot_mask.shape
        active = x.slots.new_zeros(batch, slots, routing.selected_pathways.shape[1], self.config.hidden_dim)
        stance_logits = stance_rows = None
        for index, name in enumerate(self.pathway_names):
            rows, position = torch.where(routing.selected_pathways == index)
            if rows.numel() == 0:
                continue  # sparse for real: a pathway no row selected never runs
            h, stance = self.pathways[name](x.select(rows))  # (rows, slots, hidden)
            weight = routing.routing_weights[rows, position].to(h.dtype)
            active[rows, :, position] = h * weight[:, None, None]  # Mixtral-style: scale by the routing weight
            if stance is not None:
                stance_logits, stance_rows = stance, rows
        return active * x.slot_mask[:, :, None, None], stance_logits, stance_rows

    def _pathways_packed(
        self, x: PathwayInput, routing: Routing
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The same for a batch whose rows are all routed alike, with the real slots of all rows packed
        into one row: `(1, real slots, k, hidden)`.

        One query scoring many documents (a search, a scoring job) routes every row alike; packed,
        the fusion skips the padding of a batch of documents of unequal length.
        """
        columns, stance_logits, stance_rows = [], None, None
        real = real_slots(x.slot_mask)
        for position, index in enumerate(routing.selected_pathways[0].tolist()):
            name = self.pathway_names[index]
            h, stance = self.pathways[name](x)  # (batch, slots, hidden)
            packed = h.reshape(-1, h.shape[-1]).index_select(0, real)  # (real slots, hidden)
            columns.append(packed * routing.routing_weights[0, position].to(h.dtype))
            if stance is not None:
                stance_logits, stance_rows = stance, torch.arange(x.batch_size, device=h.device)
        return torch.stack(columns, dim=1).unsqueeze(0), stance_logits, stance_rows

    def _fuse(
        self, x: PathwayInput, routing: Routing
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Active pathways, then fusion: slot states `(batch, slots, hidden)` and pathway attention
        `(batch, slots, pathways)`, zeros on padding; and the stance logits and their rows."""
        selected, weights = routing.selected_pathways, routing.routing_weights
        if not (bool((selected == selected[:1]).all()) and bool((weights == weights[:1]).all())):
            active, stance_logits, stance_rows = self._pathways_by_row(x, routing)
            z, attention = self.fusion(active, routing)
            return z, attention * x.slot_mask.unsqueeze(-1), stance_logits, stance_rows
        active, stance_logits, stance_rows = self._pathways_packed(x, routing)
        packed_z, packed_attention = self.fusion(active, routing.select(slice(0, 1)))  # (1, real slots, ...)
        batch, slots = x.slot_mask.shape
        z = active.new_zeros(batch, slots, self.config.hidden_dim)
        z[x.slot_mask] = packed_z[0]
        attention = active.new_zeros(batch, slots, len(self.pathway_names))
        attention[x.slot_mask] = packed_attention[0]
        return z, attention, stance_logits, stance_rows

    def _bounded(self, correction: torch.Tensor) -> torch.Tensor:
        """A pathway correction squashed into (-bound, bound): the evidence always stays in reach."""
        bound = self.config.correction_bound
        return bound * torch.tanh(correction / bound)

    def forward(
        self,
        x: PathwayInput,
        prior: torch.Tensor | None = None,
        fusion_gap: torch.Tensor | None = None,
        k: int | None = None,
    ) -> ModelOutput:
        """Scores a batch; `prior` is (batch, config.prior_features) first-stage features (NaN rows: none), or None;
        `fusion_gap` is (batch,) how far each row's fusion stands below its query's best candidate, or None;
        `k` the pathways each query is routed to (None: the config's `pathways_per_query`)."""
        batch, slots = x.slot_mask.shape
        reading = self.reader is not None and bool(self.reader_mix.any())
        reader_logits = self.reader(x) if reading else None  # (batch, slots)
        routing = self.gate(x.query, k)
        z, attention, stance_logits, stance_rows = self._fuse(
            x, routing
        )  # (batch, slots, hidden), (batch, slots, pathways)
        slot_features = z
        if self.config.slot_contrast:
            contrast = z - masked_mean(z, x.slot_mask, dim=1).unsqueeze(1)  # (batch, slots, hidden)
            slot_features = torch.cat([z, contrast], dim=-1)
        raw_slot = self.slot_head(slot_features).squeeze(-1)  # (batch, slots)
        if self.salience is not None:
            raw_slot = raw_slot + self.salience(x.slots).squeeze(-1)
        if self.config.zero_shot_residual:
            raw_slot = self.evidence(x) + self._bounded(raw_slot)
        pooled, pooling_weights = self.pooling(z, x.slot_mask, x.query)
        masked = raw_slot.masked_fill(~x.slot_mask, float("-inf"))
        best_slot = masked.max(-1).values  # (batch,)
        mean_slot = (raw_slot * x.slot_mask).sum(-1) / x.slot_mask.sum(-1).clamp(min=1)
        if prior is None:
            prior_features = x.slots.new_zeros(batch, self.config.prior_features + 1)
        else:
            has_prior = ~torch.isnan(prior).any(dim=-1, keepdim=True)  # (batch, 1)
            prior = torch.where(has_prior, prior, torch.zeros_like(prior)).to(x.slots.dtype)
            prior_features = torch.cat([prior, has_prior.to(x.slots.dtype)], dim=-1)
        doc_features = torch.cat([pooled, best_slot.unsqueeze(-1), mean_slot.unsqueeze(-1), prior_features], dim=-1)
        raw_doc = self.doc_head(doc_features).squeeze(-1)  # (batch,)
        if self.config.zero_shot_residual:
            fusion = prior_features[:, self.config.prior_features - 1]  # the first stage's fusion; 0 without a prior
            raw_doc = self.doc_evidence(torch.stack([best_slot, fusion], dim=-1)).squeeze(-1) + self._bounded(raw_doc)
        field_slot = raw_slot
        if reader_logits is not None:
            field_slot = raw_slot + self.reader_mix[0] * reader_logits
            best_read = reader_logits.masked_fill(~x.slot_mask, float("-inf")).max(-1).values  # (batch,)
            raw_doc = raw_doc + self.reader_mix[1] * best_read
        if fusion_gap is not None:
            raw_doc = raw_doc - self.first_stage_trust * fusion_gap
        doc_logits = raw_doc * self.doc_calibration[0] + self.doc_calibration[1]
        return ModelOutput(
            slot_logits=masked,
            doc_logits=doc_logits,
            field=slot_probability(
                field_slot, x.slot_mask, doc_logits, self.slot_calibration, self.config.slot_given_document
            ).masked_fill(~x.slot_mask, 0.0),
            routing=routing,
            pathway_attention=attention,
            pooling_weights=pooling_weights,
            stance_logits=stance_logits,
            stance_rows=stance_rows,
        )
