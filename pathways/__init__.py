"""The nine pathways of Spicy Lentil: one module each, one interface (`base.Pathway`)."""

from .base import Pathway, PathwayInput
from .registry import PATHWAY_NAMES, PATHWAYS, build_pathways

__all__ = ["Pathway", "PathwayInput", "PATHWAY_NAMES", "PATHWAYS", "build_pathways"]
