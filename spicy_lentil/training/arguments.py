"""`TrainingArguments`: every setting of one training run, with the reason for each default beside it."""

from __future__ import annotations

from dataclasses import dataclass

from ..network.losses import LossWeights


@dataclass
class TrainingArguments:
    output: str  # folder for the best model, checkpoints/ and training_log.jsonl
    epochs: int = 8  # passes over the training queries
    queries_per_step: int = 8  # queries per optimizer step; each brings 1 positive + `negatives` documents
    negatives: int = 15  # hard negatives per query and step
    negative_pool: int = 50  # negatives are sampled from the first stage's top `negative_pool` non-relevant documents
    candidates: int = 30  # first-stage documents reranked when validating (enough to pick the best epoch by nDCG@10)
    learning_rate: float = 1e-3  # AdamW, linear warm-up then cosine decay
    weight_decay: float = 0.01
    warmup_steps: int = 20
    # Pointwise BCE on document scores (relevant 1, negatives 0): the listwise loss alone leaves their level free.
    document_weight: float = 0.2
    slot_weight: float = 1.0  # BCE on the rationale slots of relevant documents
    # Listwise CE over each labelled document's slots, rationales as targets: slot MAP ranks within a document.
    slot_ranking_weight: float = 2.0
    negative_slot_weight: float = 0.1  # BCE towards 0 on the slots of negatives
    stance_weight: float = 0.2  # the stance head of the pathway that judges stance, where stance labels exist
    load_balancing_weight: float = 0.01  # Switch load-balancing loss of the gate (losses.load_balancing_loss)
    z_loss_weight: float = 0.001  # ST-MoE router z-loss (losses.router_z_loss)
    prior_dropout: float = 0.25  # share of queries trained without the first-stage prior (bare documents have none)
    seed: int = 0
    train_encoder: bool = False  # fine-tune the encoder too (meant for a GPU: slots are re-encoded every step)
    encoder_learning_rate: float = 2e-5
    calibrate: bool = (
        True  # after training, fit Platt scaling of the kept model on the validation splits (calibration.json)
    )
    # Calibration sees what a user hands over with a question: the asked documents, a related one that does
    # not answer (the best non-relevant among the first stage's top few) and an unrelated one.
    calibration_candidates: int = 3
    # Everyday-style answer cases (`evaluation.read_answer_cases`: a question over a short paragraph with its
    # answer marked, and an unrelated paragraph) fitted on beside the validation splits, as one more dataset:
    # the text users hand over, which no labelled split is. None: the validation splits alone.
    calibration_cases: str | None = None
    unanswerable_weight: float = 1.0  # BCE towards 0 on the slots of a document asked a question it does not answer
    validation_queries: int = (
        200  # validation queries per dataset and epoch (the first by id): selection, not the report
    )

    def loss_weights(self) -> LossWeights:
        """The weights `losses.training_losses` gives its terms."""
        return LossWeights(
            self.document_weight, self.slot_ranking_weight, self.stance_weight,
            self.load_balancing_weight, self.z_loss_weight,
        )
