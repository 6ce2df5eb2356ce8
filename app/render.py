"""HTML and Altair views of relevance fields: pure functions of API results, no Streamlit."""

from __future__ import annotations

import html
import json
from typing import Sequence

import altair as alt
import pandas as pd

from spicy_lentil import ANSWER_THRESHOLD, RelevanceField

# One warm hue from cream to burnt orange: a score reads as "how hot", and stays legible on white.
LOW_RGB = (255, 247, 237)
HIGH_RGB = (194, 65, 12)
ACCENT = "#ea580c"
INACTIVE = "#e7e5e4"
WHITE_TEXT_FROM = 0.62
HEATMAP_MAX_SLOTS = 60

CSS = """
<style>
.sl-field { white-space: pre-wrap; line-height: 1.75; font-size: 0.95rem; max-height: 20rem; overflow-y: auto;
            padding-right: 0.4rem; }
.sl-slot { border-radius: 0.25rem; padding: 0.1rem 0; box-decoration-break: clone;
           -webkit-box-decoration-break: clone; }
.sl-slot:hover { outline: 2px solid #7c2d12; }
.sl-slot.sl-answer { box-shadow: inset 0 -2px 0 #7c2d12; }
.sl-legend { display: flex; align-items: center; gap: 0.5rem; font-size: 0.8rem; color: #78716c;
             margin: 0.25rem 0 0.75rem; white-space: nowrap; }
.sl-legend-bar { width: 11rem; height: 0.7rem; border-radius: 0.35rem; border: 1px solid #f1e7dd; }
.sl-doc-head { display: flex; align-items: center; gap: 0.75rem; margin-bottom: 0.1rem; }
.sl-rank { font-size: 0.8rem; color: #a8a29e; font-variant-numeric: tabular-nums; }
.sl-title { font-weight: 600; font-size: 1.02rem; flex: 1 1 auto; }
.sl-score { font-variant-numeric: tabular-nums; font-weight: 600; color: #9a3412; }
.sl-scorebar { flex: 0 0 5rem; height: 0.45rem; background: #f5f5f4; border-radius: 0.25rem; overflow: hidden; }
.sl-scorebar > div { height: 100%; background: #ea580c; }
.st-key-gate-chart { position: sticky; top: 4rem; }
.sl-chips { display: flex; flex-wrap: wrap; gap: 0.35rem; margin: 0.2rem 0 0.6rem; }
.sl-chip { font-size: 0.8rem; padding: 0.1rem 0.55rem; border-radius: 1rem; cursor: help;
           background: #f5f5f4; color: #78716c; border: 1px solid #e7e5e4; }
.sl-chips-label { font-size: 0.8rem; color: #78716c; align-self: center; margin-right: 0.2rem; }
.st-key-suggestions button { min-height: 0; padding: 0.2rem 0.75rem; border-radius: 1rem; font-size: 0.85rem; }
.st-key-suggestions button p { font-size: 0.85rem; }
.sl-questions { font-size: 0.85rem; opacity: 0.85; }
.sl-questions ul { margin: 0.3rem 0 0 1rem; padding: 0; }
.sl-questions li { margin: 0.15rem 0; }
.sl-chip.sl-active { background: #fff1e6; color: #9a3412; border-color: #fdba74; font-weight: 600; }
</style>
"""


def shade(t: float) -> tuple[str, str]:
    """Background and text colour for a shading level t in [0, 1]."""
    t = min(max(t, 0.0), 1.0)
    r, g, b = (round(lo + (hi - lo) * t) for lo, hi in zip(LOW_RGB, HIGH_RGB))
    return f"rgb({r},{g},{b})", "#ffffff" if t >= WHITE_TEXT_FROM else "#1c1917"


def shading_levels(scores: Sequence[float], stretch: bool) -> list[float]:
    """Scores as shading levels: as they are, or stretched to the document's own min..max."""
    if not stretch or not scores:
        return list(scores)
    low, high = min(scores), max(scores)
    if high - low < 1e-9:
        return [0.5] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def field_html(text: str, field: RelevanceField, stretch: bool = False) -> str:
    """The document text exactly as given, each slot shaded by its score, the score on hover."""
    levels = shading_levels([slot.score for slot in field.slots], stretch)
    parts, position = [], 0
    for number, (slot, level) in enumerate(zip(field.slots, levels), start=1):
        parts.append(html.escape(text[position : slot.start]))
        background, colour = shade(level)
        answers = " sl-answer" if slot.score >= ANSWER_THRESHOLD else ""
        parts.append(
            f'<span class="sl-slot{answers}" data-score="{slot.score:.4f}" '
            f'title="slot {number} · score {slot.score:.3f}" '
            f'style="background:{background};color:{colour}">{html.escape(text[slot.start : slot.end])}</span>'
        )
        position = slot.end
    parts.append(html.escape(text[position:]))
    return f'<div class="sl-field">{"".join(parts)}</div>'


def legend_html(stretch: bool) -> str:
    stops = ", ".join(f"{shade(t / 4)[0]} {t * 25}%" for t in range(5))
    low, high = ("each document's lowest", "highest") if stretch else ("0", "1")
    return (
        f'<div class="sl-legend"><span>slot score {low}</span><div class="sl-legend-bar" '
        f'style="background:linear-gradient(90deg, {stops})"></div><span>{high}</span>'
        f"<span>· underlined: scores at least {ANSWER_THRESHOLD:g}, likelier to answer than not · hover a sentence "
        "for its score</span></div>"
    )


def document_header_html(rank: int, title: str, score: float) -> str:
    return (
        f'<div class="sl-doc-head"><span class="sl-rank">#{rank}</span>'
        f'<span class="sl-title">{html.escape(title)}</span>'
        f'<span class="sl-score" title="document score">{score:.3f}</span>'
        f'<div class="sl-scorebar" title="document score {score:.3f}">'
        f'<div style="width:{score * 100:.1f}%"></div></div></div>'
    )


def pathway_chips_html(names: Sequence[str], active: Sequence[str], questions: dict[str, str]) -> str:
    """The nine pathways as chips, the active ones highlighted, each pathway's question on hover."""
    chips = "".join(
        f'<span class="sl-chip{" sl-active" if name in active else ""}" title="{html.escape(questions.get(name, ""))}">'
        f"{html.escape(name)}</span>"
        for name in names
    )
    return f'<div class="sl-chips"><span class="sl-chips-label">Routed to</span>{chips}</div>'


def active_questions_html(active: Sequence[str], questions: dict[str, str]) -> str:
    """What each active pathway asks of a sentence, highest gate weight first."""
    items = "".join(f"<li><b>{html.escape(name)}</b> · {html.escape(questions.get(name, ''))}</li>" for name in active)
    return f'<div class="sl-questions">What the active pathways ask of each sentence:<ul>{items}</ul></div>'


def gate_chart(gate: dict[str, float], active: Sequence[str], questions: dict[str, str]) -> alt.Chart:
    """The gate's weight on each of the nine pathways, in their fixed order; the k that ran in colour."""
    names = list(gate)
    frame = pd.DataFrame(
        {
            "pathway": names,
            "weight": [gate[n] for n in names],
            "state": ["active" if n in active else "not routed" for n in names],
            "label": [f"{gate[n]:.2f}" if n in active else "off" for n in names],
            "question": [questions.get(n, "") for n in names],
        }
    )
    y = alt.Y("pathway:N", sort=names, title=None, axis=alt.Axis(labelFontSize=12, labelLimit=140, labelOverlap=False))
    tooltip = [
        alt.Tooltip("pathway:N"),
        alt.Tooltip("question:N"),
        alt.Tooltip("weight:Q", format=".3f"),
        alt.Tooltip("state:N"),
    ]
    bars = (
        alt.Chart(frame)
        .mark_bar(cornerRadiusEnd=3)
        .encode(
            x=alt.X("weight:Q", title="gate weight", scale=alt.Scale(domain=[0, max(1e-6, max(gate.values())) * 1.25])),
            y=y,
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=["active", "not routed"], range=[ACCENT, INACTIVE]),
                legend=alt.Legend(orient="bottom", title=None),
            ),
            tooltip=tooltip,
        )
    )
    labels = bars.mark_text(align="left", dx=4, fontSize=11).encode(text="label:N", color=alt.value("#a8a29e"))
    return (bars + labels).properties(height=alt.Step(26))


def _slot_label(number: int, text: str, width: int = 38) -> str:
    text = " ".join(text.split())
    return f"{number:>3} · {text[:width]}{'…' if len(text) > width else ''}"


def attention_heatmap(field: RelevanceField, names: Sequence[str], questions: dict[str, str]) -> alt.Chart:
    """The null point's weight on each pathway, per slot: which pathways each sentence's score listened to."""
    rows = []
    for number, (slot, attention) in enumerate(zip(field.slots[:HEATMAP_MAX_SLOTS], field.pathway_attention), start=1):
        label = _slot_label(number, slot.text)
        for name in names:
            rows.append(
                {
                    "slot": label,
                    "pathway": name,
                    "attention": attention.get(name, 0.0),
                    "sentence": slot.text[:200],
                    "slot score": slot.score,
                    "question": questions.get(name, ""),
                }
            )
    frame = pd.DataFrame(rows)
    order = list(dict.fromkeys(frame["slot"]))
    return (
        alt.Chart(frame)
        .mark_rect(stroke="white", strokeWidth=1)
        .encode(
            x=alt.X(
                "pathway:N",
                sort=list(names),
                title=None,
                axis=alt.Axis(labelAngle=-30, orient="top", labelOverlap=False),
            ),
            y=alt.Y(
                "slot:N", sort=order, title=None, axis=alt.Axis(labelLimit=320, labelFontSize=11, labelOverlap=False)
            ),
            color=alt.Color(
                "attention:Q",
                scale=alt.Scale(scheme="oranges", domain=[0, 1]),
                legend=alt.Legend(title="attention", gradientLength=120),
            ),
            tooltip=[
                alt.Tooltip("sentence:N"),
                alt.Tooltip("pathway:N"),
                alt.Tooltip("question:N"),
                alt.Tooltip("attention:Q", format=".3f"),
                alt.Tooltip("slot score:Q", format=".3f"),
            ],
        )
        .properties(height=alt.Step(22))
    )


def mean_attention(fields: Sequence[RelevanceField], names: Sequence[str]) -> dict[str, float]:
    """Mean null-point attention per pathway over all slots of the given fields."""
    totals = dict.fromkeys(names, 0.0)
    count = 0
    for field in fields:
        for attention in field.pathway_attention:
            count += 1
            for name in names:
                totals[name] += attention.get(name, 0.0)
    return {name: total / count if count else 0.0 for name, total in totals.items()}


def mean_attention_chart(means: dict[str, float], questions: dict[str, str]) -> alt.Chart:
    names = list(means)
    frame = pd.DataFrame(
        {
            "pathway": names,
            "mean attention": [means[n] for n in names],
            "question": [questions.get(n, "") for n in names],
        }
    )
    return (
        alt.Chart(frame)
        .mark_bar(color=ACCENT, cornerRadiusEnd=3)
        .encode(
            x=alt.X("mean attention:Q", title="mean attention over all slots"),
            y=alt.Y("pathway:N", sort=names, title=None, axis=alt.Axis(labelOverlap=False)),
            tooltip=[
                alt.Tooltip("pathway:N"),
                alt.Tooltip("question:N"),
                alt.Tooltip("mean attention:Q", format=".3f"),
            ],
        )
        .properties(height=alt.Step(26))
    )


def results_jsonl(query: str, ranked: Sequence[int], fields: Sequence[RelevanceField]) -> str:
    """The ranked fields as JSONL, one `to_dict()` per line with its rank and the query."""
    return "".join(
        json.dumps({"rank": rank, "query": query, **fields[i].to_dict()}, ensure_ascii=False) + "\n"
        for rank, i in enumerate(ranked, start=1)
    )
