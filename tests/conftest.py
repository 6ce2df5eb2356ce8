import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathways.base import PathwayInput  # noqa: E402


@pytest.fixture(scope="session")
def lentil():
    """The bundled default model, loaded once per test session."""
    from spicy_lentil import SpicyLentil

    return SpicyLentil.from_pretrained()


def make_input(batch=3, slots=5, slot_tokens=7, query_tokens=4, dim=384, padded_row=1, padded_from=3, seed=0):
    """A random PathwayInput whose row `padded_row` has only `padded_from` real slots."""
    g = torch.Generator().manual_seed(seed)
    slot_mask = torch.ones(batch, slots, dtype=torch.bool)
    if padded_row is not None:
        slot_mask[padded_row, padded_from:] = False
    slot_token_mask = torch.ones(batch, slots, slot_tokens, dtype=torch.bool)
    slot_token_mask[..., -2:] = False
    slot_token_mask &= slot_mask.unsqueeze(-1)
    slot_ids = torch.randint(0, 50, (batch, slots, slot_tokens), generator=g).masked_fill(~slot_token_mask, -1)
    return PathwayInput(
        query=torch.nn.functional.normalize(torch.randn(batch, dim, generator=g), dim=-1),
        query_tokens=torch.randn(batch, query_tokens, dim, generator=g),
        query_token_mask=torch.ones(batch, query_tokens, dtype=torch.bool),
        query_ids=torch.randint(0, 50, (batch, query_tokens), generator=g),
        slots=torch.nn.functional.normalize(torch.randn(batch, slots, dim, generator=g), dim=-1) * slot_mask.unsqueeze(-1),
        slot_mask=slot_mask,
        slot_tokens=torch.randn(batch, slots, slot_tokens, dim, generator=g) * slot_token_mask.unsqueeze(-1),
        slot_token_mask=slot_token_mask,
        slot_ids=slot_ids,
        title=torch.randn(batch, dim, generator=g),
        title_mask=torch.tensor([True] + [False] * (batch - 1)),
    )
