"""Spicy Lentil: which parts of these texts matter for this query, and why."""

from .config import SpicyLentilConfig
from .engine import SpicyLentil
from .errors import ModelLoadError, SpicyLentilError
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
