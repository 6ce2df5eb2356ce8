"""The reader: a cross-encoder that reads the query and a slot in one input and gives the slot a logit.

The pathways compare a query with slots encoded apart (an index stores a corpus's slot encodings
once), so an answer that turns on how the query's words bear on the slot's ("What time can I check
in?" over "Check-out is at 11:00" and "Check-in starts at 15:00") can look no better than its
neighbours. A transformer reading `[CLS] query [SEP] slot [SEP]` sees that (Nogueira and Cho 2019,
"Passage Re-ranking with BERT"). It reads the token ids a slot encoding already holds, so a model with
a reader scores documents from text and from an index alike.

The reader's logit joins the head's after training (`SpicyLentilModel.reader_mix`, fitted with the
calibration): the head's weights and the losses it was trained with stay as they were.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ..pathways.base import PathwayInput

READER_WEIGHTS_NAME = "reader.safetensors"  # the reader's tuned tensors and head in a model folder
FROZEN_PREFIXES = ("embeddings.word_embeddings.",)  # kept from the base model, never written


def load_backbone(name: str):
    """The base transformer (`transformers.AutoModel`) and its tokenizer, from local files when `name` is a
    folder or the bundled alias."""
    import os

    from transformers import AutoModel, AutoTokenizer

    from .encoder import resolve_encoder_path

    path = resolve_encoder_path(name)
    local = os.path.isdir(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
    backbone = AutoModel.from_pretrained(path, local_files_only=local)
    return backbone, tokenizer


class Reader(nn.Module):
    """Cross-encoder slot logits: mean of the pair's final token states, then a linear head.

    Args:
        backbone: a `transformers` encoder (BERT-style: input ids, attention mask, token type ids).
        tokenizer: its tokenizer (the ids of its special tokens are kept).
        max_tokens: length of a (query, slot) pair, special tokens included; the slot is cut first, the
            query only past half of it.
    """

    def __init__(self, backbone: nn.Module, tokenizer, max_tokens: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        self.special_ids = (tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id or 0)
        self.max_tokens = max_tokens

    def pair_inputs(self, x: PathwayInput) -> dict[str, torch.Tensor]:
        """`[CLS] query [SEP] slot [SEP]` for every real slot of the batch, in row-major order, as the
        tokenizer's pair encoding builds it: `input_ids`, `attention_mask`, `token_type_ids`, each `(slots, length)`."""
        cls_id, sep_id, pad_id = self.special_ids
        device = x.slot_mask.device
        counts = x.slot_mask.sum(1)  # (batch,)
        slot_row = torch.repeat_interleave(torch.arange(x.batch_size, device=device), counts)  # (n,)
        n = slot_row.numel()
        # The query's own tokens (special tokens and padding are -1), moved to the front of each row.
        query_ids = x.query_ids
        order = torch.argsort((query_ids < 0).to(torch.int8), dim=1, stable=True)
        query_ids = query_ids.gather(1, order)  # (batch, q_tokens)
        query_len = (x.query_ids >= 0).sum(1).clamp(max=(self.max_tokens - 3) // 2)
        # The slot's own tokens, numbered within their slot.
        kept = x.token_ids >= 0
        token_ids = x.token_ids[kept]
        first_slot = torch.cumsum(counts, 0) - counts  # (batch,) index of each row's first real slot
        token_slot = (first_slot[x.token_row] + x.token_slot)[kept]  # (kept,) ascending
        slot_len = torch.bincount(token_slot, minlength=n)  # (n,)
        position = torch.arange(token_slot.numel(), device=device) - (torch.cumsum(slot_len, 0) - slot_len)[token_slot]
        q_len = query_len[slot_row]  # (n,)
        s_len = torch.minimum(slot_len, (self.max_tokens - 3 - q_len).clamp(min=0))
        length = 3 + q_len + s_len
        width = int(length.max()) if n else 3
        columns = torch.arange(width, device=device).expand(n, width)
        ids = torch.full((n, width), pad_id, dtype=torch.long, device=device)
        ids[:, 0] = cls_id
        q_width = min(int(query_len.max()) if n else 0, query_ids.shape[1])
        in_query = columns[:, 1 : 1 + q_width] <= q_len[:, None]
        ids[:, 1 : 1 + q_width] = torch.where(in_query, query_ids[slot_row, :q_width], ids[:, 1 : 1 + q_width])
        ids[torch.arange(n, device=device), 1 + q_len] = sep_id
        fits = position < s_len[token_slot]
        ids[token_slot[fits], (2 + q_len[token_slot] + position)[fits]] = token_ids[fits]
        ids[torch.arange(n, device=device), length - 1] = sep_id
        return {
            "input_ids": ids,
            "attention_mask": (columns < length[:, None]).long(),
            "token_type_ids": ((columns >= (2 + q_len)[:, None]) & (columns < length[:, None])).long(),
        }

    def pair_logits(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(pairs,) the logit of each encoded (query, slot) pair."""
        states = self.backbone(**inputs).last_hidden_state  # (pairs, length, hidden)
        mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
        return self.head((states * mask).sum(1) / mask.sum(1).clamp(min=1)).squeeze(-1)

    def forward(self, x: PathwayInput) -> torch.Tensor:
        """(batch, slots) the reader's logit of every real slot; 0 on padding."""
        logits = x.slots.new_zeros(x.slot_mask.shape)
        if bool(x.slot_mask.any()):
            logits[x.slot_mask] = self.pair_logits(self.pair_inputs(x)).to(logits.dtype)
        return logits

    def tuned_state(self) -> dict[str, torch.Tensor]:
        """The tensors `reader.safetensors` holds: every trainable one but the frozen word embeddings, float16."""
        return {
            name: value.detach().to(torch.float16).contiguous()
            for name, value in self.named_parameters()
            if not name.removeprefix("backbone.").startswith(FROZEN_PREFIXES)
        }

    def load_tuned(self, path: str | Path) -> None:
        """Loads `tuned_state` tensors from a file in place.

        Raises:
            ValueError: the file lacks a tensor the reader tunes, or holds one it does not have or of another shape.
        """
        own = dict(self.named_parameters())
        tuned = load_file(str(path), device="cpu")
        expected = set(self.tuned_state())
        wrong = sorted(n for n, v in tuned.items() if n not in expected or own[n].shape != v.shape)
        missing = sorted(expected - set(tuned))
        if wrong or missing:
            raise ValueError(f"{path} does not fit the reader: unexpected {wrong[:3]}, missing {missing[:3]}")
        with torch.no_grad():
            for name, value in tuned.items():
                own[name].copy_(value.to(own[name].dtype))
