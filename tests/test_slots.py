import pytest

from spicy_lentil.slots import Slotter, whitespace_offsets

TRICKY = [
    "Dr. Smith arrived at 5 p.m. on Jan. 3rd. He left, e.g. at dawn.",
    "Line one without a stop\nline two continues.\r\nA third, after CRLF.",
    "Intro paragraph.\n\n- first bullet\n- second bullet\n* third bullet\n1. numbered item\n2) another",
    "Café Żółw — naïve 😀 test. 日本語の文です。 مرحبا بالعالم. שלום עולם.",
    "Control\x00chars\x07 here. And\ttabs\u200b zero-width.",
    "   leading and trailing whitespace.   \n\n   ",
    "no punctuation at all just words going on",
]


@pytest.mark.parametrize("text", TRICKY)
def test_spans_round_trip(text):
    slots, truncated = Slotter().split(text)
    assert slots and not truncated
    for slot in slots:
        assert text[slot.start : slot.end] == slot.text
        assert slot.text == slot.text.strip()
    starts = [s.start for s in slots]
    assert starts == sorted(starts)


def test_bullets_are_their_own_slots():
    slots, _ = Slotter().split(TRICKY[2])
    assert [s.text for s in slots] == [
        "Intro paragraph.",
        "- first bullet",
        "- second bullet",
        "* third bullet",
        "1. numbered item",
        "2) another",
    ]


def test_abbreviations_do_not_split():
    slots, _ = Slotter().split(TRICKY[0])
    assert [s.text for s in slots] == ["Dr. Smith arrived at 5 p.m. on Jan. 3rd.", "He left, e.g. at dawn."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_empty_documents_have_no_slots(text):
    assert Slotter().split(text) == ([], False)


def test_long_sentence_becomes_overlapping_windows():
    words = [f"w{i}" for i in range(50)]
    text = " ".join(words) + "."
    slots, _ = Slotter(window_tokens=20, stride=5).split(text)
    assert len(slots) == 3  # windows start at words 0, 15 and 30
    for slot in slots:
        assert text[slot.start : slot.end] == slot.text
        assert len(slot.text.split()) <= 20
    assert slots[0].text.split()[-5:] == slots[1].text.split()[:5]  # the stride overlaps
    assert slots[-1].end == len(text)


def test_slot_cap_marks_truncation():
    text = " ".join(f"Sentence number {i} is here." for i in range(30))
    slots, truncated = Slotter(max_slots=10).split(text)
    assert len(slots) == 10 and truncated
    assert Slotter(max_slots=30).split(text)[1] is False


def test_encoder_tokens_drive_windows(lentil):
    text = "pneumonoultramicroscopicsilicovolcanoconiosis " * 200
    slots, _ = lentil.slotter.split(text)
    assert len(slots) > 1
    for slot in slots:
        assert text[slot.start : slot.end] == slot.text
        assert len(lentil.encoder.token_offsets(slot.text)) <= lentil.slotter.window_tokens


def test_a_huge_run_on_document_is_read_only_as_far_as_the_slot_cap(monkeypatch):
    """10 MB without a sentence break: the tokenizer and the sentence splitter stop near the cap, spans stay exact."""
    from spicy_lentil import slots as slots_module

    read = {"tokenized": 0, "split": 0}

    def offsets(text):
        read["tokenized"] += len(text)
        return whitespace_offsets(text)

    real_split = slots_module.blingfire.text_to_sentences_and_offsets

    def counting_split(text):
        read["split"] += len(text)
        return real_split(text)

    document = "word " * 2_000_000
    slotter = Slotter(offsets, window_tokens=64, stride=8, max_slots=32)
    monkeypatch.setattr(slots_module.blingfire, "text_to_sentences_and_offsets", counting_split)
    slots, truncated = slotter.split(document)
    assert truncated and len(slots) == 32
    assert all(document[s.start : s.end] == s.text for s in slots)
    assert read["tokenized"] < 200_000 and read["split"] <= 2 * slots_module.SENTENCE_CHUNK
