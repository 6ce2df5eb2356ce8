"""Slots: the sentences (or windows of over-long sentences) that a relevance field scores.

Every slot keeps its exact character span, so `document[slot.start:slot.end] == slot.text` holds
for any input. Sentence boundaries come from BlingFire; paragraph breaks and list items are
block boundaries first, because a sentence splitter reads a bullet list as one run-on sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import blingfire

# A line that starts a list item: "- x", "* x", "• x", "1. x", "2) x".
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•‣◦]|\d{1,3}[.)])[ \t]+")
_WORDS = re.compile(r"\S+")

TokenOffsets = Callable[[str], Sequence[tuple[int, int]]]


@dataclass(frozen=True)
class Slot:
    """One scored unit of a document: `document[start:end] == text`."""

    text: str
    start: int
    end: int
    score: float | None = None

    def to_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end, "score": self.score}


def whitespace_offsets(text: str) -> list[tuple[int, int]]:
    """Token spans by whitespace: the fallback when no encoder tokenizer is given."""
    return [m.span() for m in _WORDS.finditer(text)]


class Slotter:
    """Splits documents into slots.

    Args:
        token_offsets: maps text to the character spans of its encoder tokens; used to cut a
            sentence longer than `window_tokens` into overlapping windows. Defaults to whitespace.
        window_tokens: the encoder's window, in tokens (without special tokens).
        stride: tokens shared by consecutive windows of one long sentence.
        max_slots: slots kept per document; the rest is dropped and the document marked truncated.
    """

    def __init__(
        self,
        token_offsets: TokenOffsets | None = None,
        window_tokens: int = 254,
        stride: int = 32,
        max_slots: int = 256,
    ) -> None:
        if window_tokens < 2 or not 0 <= stride < window_tokens:
            raise ValueError(f"need window_tokens >= 2 and 0 <= stride < window_tokens, got {window_tokens}, {stride}")
        if max_slots < 1:
            raise ValueError(f"max_slots must be >= 1, got {max_slots}")
        self.token_offsets = token_offsets or whitespace_offsets
        self.window_tokens = window_tokens
        self.stride = stride
        self.max_slots = max_slots

    def split(self, document: str) -> tuple[list[Slot], bool]:
        """Returns the document's slots in order and whether the slot cap cut it."""
        slots: list[Slot] = []
        for block_start, block_end in _blocks(document):
            for start, end in _sentences(document, block_start, block_end):
                for w_start, w_end in self._windows(document, start, end):
                    if len(slots) == self.max_slots:
                        return slots, True
                    slots.append(Slot(document[w_start:w_end], w_start, w_end))
        return slots, False

    def split_known(self, document: str, sentences: Sequence[str]) -> tuple[list[Slot], bool] | None:
        """Slots from a given sentence split (datasets that ship one, so slot labels line up).

        Returns None when a sentence cannot be found, in order, in the document.
        """
        slots: list[Slot] = []
        position = 0
        for sentence in sentences:
            sentence = sentence.strip()
            if not sentence:
                return None  # an empty sentence would shift every later slot index
            start = document.find(sentence, position)
            if start < 0:
                return None
            if len(slots) == self.max_slots:
                return slots, True
            slots.append(Slot(sentence, start, start + len(sentence)))
            position = start + len(sentence)
        return slots, False

    def _windows(self, document: str, start: int, end: int) -> list[tuple[int, int]]:
        sentence = document[start:end]
        # A token covers at least one byte, so a sentence of few bytes cannot overflow the window:
        # skip tokenizing the common case.
        if len(sentence.encode("utf-8")) <= self.window_tokens:
            return [(start, end)]
        offsets = [(a, b) for a, b in self.token_offsets(sentence) if b > a]
        if len(offsets) <= self.window_tokens:
            return [(start, end)]
        step = self.window_tokens - self.stride
        # A window that starts inside a word would re-tokenize differently (and longer): start at a word.
        starts_word = [i == 0 or _word_boundary(sentence, offsets[i - 1], offsets[i]) for i in range(len(offsets))]
        windows = []
        first = 0
        while True:
            last = min(first + self.window_tokens, len(offsets)) - 1
            windows.append((start + offsets[first][0], start + offsets[last][1]))
            if last == len(offsets) - 1:
                return windows
            nxt = first + step
            snapped = next((j for j in range(nxt, min(nxt + step, last + 1)) if starts_word[j]), None)
            if snapped is None:
                snapped = next((j for j in range(nxt, first, -1) if starts_word[j]), nxt)
            first = snapped


def _word_boundary(text: str, previous: tuple[int, int], current: tuple[int, int]) -> bool:
    """True when the token at `current` starts a new word rather than continuing the previous one."""
    if current[0] != previous[1]:
        return True
    return not (text[current[0]].isalnum() and text[current[0] - 1].isalnum())


def _blocks(document: str) -> list[tuple[int, int]]:
    """Paragraphs and list items as (start, end) spans: blank lines and list markers end a block."""
    blocks = []
    block_start = None
    pos = 0
    for line in document.splitlines(keepends=True):
        blank = not line.strip()
        if blank or _LIST_ITEM.match(line):
            if block_start is not None:
                blocks.append((block_start, pos))
            block_start = None if blank else pos
        elif block_start is None:
            block_start = pos
        pos += len(line)
    if block_start is not None:
        blocks.append((block_start, pos))
    return blocks


def _sentences(document: str, block_start: int, block_end: int) -> list[tuple[int, int]]:
    """Sentence spans inside one block, stripped of surrounding whitespace."""
    block = document[block_start:block_end]
    _, offsets = blingfire.text_to_sentences_and_offsets(block)
    if not offsets:
        offsets = [(0, len(block))]
    spans = []
    for start, end in offsets:
        start, end = block_start + start, block_start + min(end, len(block))
        while start < end and document[start].isspace():
            start += 1
        while end > start and document[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans
