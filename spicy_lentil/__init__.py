"""Spicy Lentil: which parts of these texts matter for this query, and why."""

from .errors import ModelLoadError, SpicyLentilError
from .frontends.engine import SpicyLentil
from .network.config import SpicyLentilConfig
from .results import ANSWER_THRESHOLD, CompressedContext, PrunedDocument, RelevanceField
from .slots import Slot, Slotter

__all__ = [
    "SpicyLentil",
    "SpicyLentilConfig",
    "RelevanceField",
    "CompressedContext",
    "PrunedDocument",
    "Slot",
    "Slotter",
    "SpicyLentilError",
    "ModelLoadError",
    "ANSWER_THRESHOLD",
]
__version__ = "0.1.0"
