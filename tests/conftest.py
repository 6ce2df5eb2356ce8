import copy
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from spicy_lentil.network.batching import collate  # noqa: E402
from spicy_lentil.network.encoder import Encoding  # noqa: E402


@pytest.fixture(scope="session")
def lentil():
    """The bundled default model, loaded once per test session and shared: tests that change it use `own_lentil`."""
    from spicy_lentil import SpicyLentil

    return SpicyLentil.from_pretrained()


@pytest.fixture
def own_lentil(lentil):
    """The shipped model for a test that changes it (the gate's k, hooks): its own copy of the network, a few
    megabytes, over the shared encoder, which loading again would cost seconds."""
    from spicy_lentil import SpicyLentil

    return SpicyLentil(copy.deepcopy(lentil.model), lentil.encoder)


def fake_encoding(tokens, dim=384, generator=None, vocab=50):
    """A random Encoding with `tokens` tokens, framed by [CLS]=101 and [SEP]=102 like a real one."""
    ids = torch.randint(1000, 1000 + vocab, (tokens,), generator=generator)
    ids[0], ids[-1] = 101, 102
    embedding = torch.nn.functional.normalize(torch.randn(dim, generator=generator), dim=-1)
    return Encoding(embedding, torch.randn(tokens, dim, generator=generator).half(), ids)


def make_input(batch=3, slots=5, slot_tokens=7, query_tokens=4, dim=384, padded_row=1, padded_from=3, seed=0):
    """A random PathwayInput, collated like real data; row `padded_row` has only `padded_from` slots."""
    g = torch.Generator().manual_seed(seed)
    queries = [fake_encoding(query_tokens, dim, g) for _ in range(batch)]
    documents = [
        [fake_encoding(slot_tokens - (i % 3), dim, g) for i in range(padded_from if row == padded_row else slots)]
        for row in range(batch)
    ]
    titles = [fake_encoding(3, dim, g)] + [None] * (batch - 1)
    return collate(queries, documents, titles, special_ids=[0, 100, 101, 102, 103])
