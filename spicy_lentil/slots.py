"""Slots: the sentences (or windows of over-long sentences) that a relevance field scores.

Every slot keeps its exact character span, so `document[slot.start:slot.end] == slot.text` holds
for any input. Sentence boundaries come from BlingFire; paragraph breaks and list items are
block boundaries first, because a sentence splitter reads a bullet list as one run-on sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import blingfire

# A line that starts a list item: "- x", "* x", "• x", "1. x", "2) x".
_LIST_ITEM = re.compile(r"[ \t]*(?:[-*•‣◦]|\d{1,3}[.)])[ \t]+")
_WORDS = re.compile(r"\S+")
SENTENCE_CHUNK = 1 << 16  # characters the sentence splitter reads at a time

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
                for w_start, w_end in self._windows(document, start, end, self.max_slots - len(slots)):
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

    def _windows(self, document: str, start: int, end: int, budget: int) -> list[tuple[int, int]]:
        """Windows of one sentence; past `budget` windows only one more is needed (it marks the cut)."""
        sentence = document[start:end]
        # A token covers at least one byte, so a sentence of few bytes cannot overflow the window:
        # skip tokenizing the common case.
        if len(sentence.encode("utf-8")) <= self.window_tokens:
            return [(start, end)]
        # A window advances at most two steps (word snapping), so this many tokens give budget + 1 windows.
        wanted = (budget + 1) * 2 * (self.window_tokens - self.stride) + self.window_tokens
        offsets = self._leading_offsets(sentence, wanted)
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

    def _leading_offsets(self, sentence: str, wanted: int) -> list[tuple[int, int]]:
        """Spans of the sentence's first `wanted` tokens (or all, if fewer), without tokenizing the rest.

        The slot cap bounds how many tokens a document can use; tokenizing a 10 MB run-on sentence
        whole would take seconds and gigabytes for windows that are then dropped. Prefixes end at
        whitespace, so the tokens kept are the ones the whole sentence would give.
        """
        length = 8 * wanted
        while True:
            if length >= len(sentence):
                return [(a, b) for a, b in self.token_offsets(sentence) if b > a]
            cut = next((i for i in range(length, length // 2, -1) if sentence[i].isspace()), length)
            offsets = [(a, b) for a, b in self.token_offsets(sentence[:cut]) if b > a]
            if len(offsets) > wanted:
                return offsets[:wanted]
            length *= 2


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


def _sentences(document: str, block_start: int, block_end: int) -> Iterator[tuple[int, int]]:
    """Sentence spans inside one block, stripped of surrounding whitespace, found lazily.

    The splitter reads at most `SENTENCE_CHUNK` characters at a time, so `split` stops reading a
    huge block once the slot cap is reached; a chunk's last sentence is read again with the next
    chunk, unless it fills the whole chunk (a run-on sentence), which is then cut at whitespace.
    """
    position = block_start
    while position < block_end:
        stop = min(position + SENTENCE_CHUNK, block_end)
        if stop < block_end:
            stop = next((i for i in range(stop, position + SENTENCE_CHUNK // 2, -1) if document[i].isspace()), stop)
        chunk = document[position:stop]
        _, offsets = blingfire.text_to_sentences_and_offsets(chunk)
        offsets = offsets or [(0, len(chunk))]
        following = stop
        if stop < block_end and len(offsets) > 1 and offsets[-1][0] > 0:
            offsets, following = offsets[:-1], position + offsets[-1][0]
        for start, end in offsets:
            start, end = position + start, position + min(end, len(chunk))
            while start < end and document[start].isspace():
                start += 1
            while end > start and document[end - 1].isspace():
                end -= 1
            if end > start:
                yield start, end
        position = following
