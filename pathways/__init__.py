"""The nine pathways of Spicy Lentil: one module each, one interface (`base.Pathway`)."""

from .base import CorpusStatistics, Pathway, PathwayInput, PathwayOutput
from .registry import PATHWAY_NAMES, PATHWAYS, build_pathways

__all__ = [
    "CorpusStatistics",
    "Pathway",
    "PathwayInput",
    "PathwayOutput",
    "PATHWAY_NAMES",
    "PATHWAYS",
    "build_pathways",
]
