"""Compressed token vectors for the corpus index: ColBERTv2-style residual compression through faiss.

Each token vector is stored as the id of its nearest k-means centroid plus a product-quantised code of
its residual (faiss `IVF{centroids},PQ{code_bytes}`, the residual compression of Santhanam et al. 2022,
"ColBERTv2"), about 34 bytes where a float16 vector takes 768. Codes are decompressed only for the
documents a query reranks. The codec is trained once per index, on the tokens of the first shard
encoded, and saved beside the shards as faiss's own serialisation (a flat byte array, no pickle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import DamagedFileError

if TYPE_CHECKING:
    import torch

FILE = "token_codec.npy"
POINTS_PER_CENTROID = 39  # faiss's k-means wants at least this many training points per centroid
PQ_CENTROIDS = 256  # 8-bit product-quantiser codes: 256 centroids per sub-vector
TRAINING_TOKENS = 65_536  # the sample the codec trains on: enough points per centroid, a bounded training time


@dataclass(frozen=True)
class CodecSpec:
    """How token vectors are compressed (None in the index settings means they are stored as float16)."""

    centroids: int = 1024  # coarse k-means centroids; each token keeps the id of its nearest
    code_bytes: int = 32  # bytes of product-quantised residual per token (the embedding dim must divide by it)

    def to_dict(self) -> dict:
        return {"centroids": self.centroids, "code_bytes": self.code_bytes}

    def check(self, dim: int) -> None:
        """Raises ValueError when the spec cannot compress vectors of `dim` dimensions."""
        if self.centroids < 1 or self.code_bytes < 1 or dim % self.code_bytes:
            raise ValueError(
                f"token codec: code_bytes={self.code_bytes} must divide the embedding dimension {dim} "
                f"(and centroids={self.centroids} be positive)"
            )


class TokenCodec:
    """A trained faiss codec: token vectors in, `code_size` bytes per token out, and back."""

    def __init__(self, index) -> None:
        self._index = index  # a trained faiss.IndexIVFPQ, used only as a stand-alone codec (sa_encode/sa_decode)

    @property
    def code_size(self) -> int:
        return int(self._index.sa_code_size())

    @classmethod
    def train(cls, tokens: np.ndarray, spec: CodecSpec, seed: int = 0) -> "TokenCodec | None":
        """A codec trained on (a sample of) `tokens`, or None when they are too few to train one.

        The coarse centroids shrink (to a power of two) to what the sample supports; under
        `POINTS_PER_CENTROID * PQ_CENTROIDS` tokens nothing is compressed.
        """
        import faiss

        count, dim = tokens.shape
        spec.check(dim)
        if count < POINTS_PER_CENTROID * PQ_CENTROIDS:
            return None
        rng = np.random.default_rng(seed)
        sample = tokens if count <= TRAINING_TOKENS else tokens[np.sort(rng.choice(count, TRAINING_TOKENS, False))]
        sample = np.ascontiguousarray(sample, dtype=np.float32)
        centroids = min(spec.centroids, 1 << int(np.log2(len(sample) // POINTS_PER_CENTROID)))
        index = faiss.index_factory(dim, f"IVF{centroids},PQ{spec.code_bytes}")
        index.cp.seed = seed
        index.pq.cp.seed = seed
        index.do_polysemous_training = False  # orders codes for Hamming search, which decoding never does; slow
        index.train(sample)
        return cls(index)

    def encode(self, tokens: np.ndarray) -> np.ndarray:
        """(tokens, dim) float vectors -> (tokens, code_size) uint8 codes."""
        if not len(tokens):
            return np.zeros((0, self.code_size), np.uint8)
        return self._index.sa_encode(np.ascontiguousarray(tokens, dtype=np.float32))

    def decode(self, codes: np.ndarray) -> "torch.Tensor":
        """(tokens, code_size) uint8 codes -> (tokens, dim) float16 vectors, what reranking reads."""
        import torch

        if not len(codes):
            return torch.zeros(0, self._index.d, dtype=torch.float16)
        return torch.from_numpy(self._index.sa_decode(np.ascontiguousarray(codes))).half()

    def save(self, folder: Path) -> None:
        import faiss

        np.save(folder / FILE, faiss.serialize_index(self._index), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> "TokenCodec":
        """The codec saved in an index folder; a missing or unreadable file raises `DamagedFileError`."""
        import faiss

        try:
            index = faiss.deserialize_index(np.load(folder / FILE, allow_pickle=False))
        except (OSError, ValueError, RuntimeError) as error:
            raise DamagedFileError(f"{folder / FILE}: {error}; the index is damaged, rebuild it") from error
        return cls(index)
