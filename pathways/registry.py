"""The nine pathways in their fixed order: four ways of knowing, then five hensions.

The order is part of the checkpoint layout (router rows, null-point projections), so it never changes.
"""

from __future__ import annotations

from .apprehension import Apprehension
from .base import Pathway
from .comprehension import Comprehension
from .extension import Extension
from .participatory import Participatory
from .perspectival import Perspectival
from .prehension import Prehension
from .procedural import Procedural
from .propositional import Propositional
from .reprehension import Reprehension

PATHWAYS: dict[str, type[Pathway]] = {
    cls.name: cls
    for cls in (
        Propositional,
        Perspectival,
        Procedural,
        Participatory,
        Prehension,
        Comprehension,
        Apprehension,
        Reprehension,
        Extension,
    )
}
PATHWAY_NAMES: tuple[str, ...] = tuple(PATHWAYS)


def build_pathways(
    names: list[str], embedding_dim: int, hidden_dim: int, dropout: float, **options
) -> dict[str, Pathway]:
    """Instantiates the named pathways, in registry order; each takes the `options` its class names in
    `config_options`."""
    return {
        name: cls(embedding_dim, hidden_dim, dropout, **{o: options[o] for o in cls.config_options})
        for name, cls in PATHWAYS.items()
        if name in names
    }
