"""A tiny BEIR-layout dataset written on the fly: 16 topics, one document and two claims each."""

import json
from pathlib import Path

TOPICS = [
    ("aspirin", "lowers the risk of heart attack", "blood clotting"),
    ("caffeine", "improves short-term alertness", "adenosine receptors"),
    ("vitamin D", "strengthens bones", "calcium absorption"),
    ("exercise", "reduces blood pressure", "vascular tone"),
    ("sleep loss", "impairs memory consolidation", "the hippocampus"),
    ("statins", "lower LDL cholesterol", "liver enzymes"),
    ("smoking", "causes lung cancer", "airway cells"),
    ("fiber", "improves gut health", "the microbiome"),
    ("insulin", "controls blood sugar", "glucose uptake"),
    ("antibiotics", "kill bacteria", "cell walls"),
    ("meditation", "reduces anxiety", "cortisol levels"),
    ("sunscreen", "prevents skin cancer", "ultraviolet damage"),
    ("vaccines", "prevent measles", "antibody production"),
    ("iron", "treats anaemia", "haemoglobin synthesis"),
    ("alcohol", "damages the liver", "fat accumulation"),
    ("salt", "raises blood pressure", "fluid retention"),
]


OTHER_TOPICS = [
    ("the bridge", "carries four lanes of traffic", "steel cables"),
    ("the museum", "opens at nine every morning", "the east entrance"),
    ("the river", "floods every spring", "melting snow"),
    ("the library", "lends laptops to students", "a booking desk"),
    ("the airport", "handles ten million passengers", "two runways"),
    ("the stadium", "seats forty thousand fans", "a retractable roof"),
    ("the market", "sells fresh fish daily", "the harbour"),
    ("the railway", "links the two capitals", "a mountain tunnel"),
]


def write_dataset(folder: Path, topics=TOPICS, prefix: str = "", unanswerable: bool = False) -> Path:
    """Writes corpus.jsonl, queries.jsonl, qrels/{train,val}.tsv and slot_qrels/{train,val}.tsv (ids start
    with `prefix`); with `unanswerable`, also unanswerable/train.tsv: each topic's first claim asked of the
    next topic's document."""
    (folder / "qrels").mkdir(parents=True)
    (folder / "slot_qrels").mkdir()
    corpus, queries = [], []
    qrels = {"train": [], "val": []}
    slots = {"train": [], "val": []}
    for t, (subject, effect, mechanism) in enumerate(topics):
        sentences = [
            f"This study examined {subject} in a large cohort of adults.",
            "Participants were followed for five years by independent clinicians.",
            f"We found that {subject} {effect} in most participants.",
            f"The effect appears to act through {mechanism}.",
            f"Further trials of {subject} are planned.",
        ]
        corpus.append(
            {
                "_id": f"{prefix}d{t}",
                "title": f"A study of {subject}",
                "text": " ".join(sentences),
                "sentences": sentences,
            }
        )
        for k, (claim, split) in enumerate(
            [
                (f"{subject.capitalize()} {effect}.", "train"),
                (f"Does {subject} work through {mechanism}?", "train" if t < len(topics) * 3 // 4 else "val"),
            ]
        ):
            query_id = f"{prefix}q{t}-{k}"
            queries.append({"_id": query_id, "text": claim})
            qrels[split].append((query_id, f"{prefix}d{t}", 1))
            slots[split].append((query_id, f"{prefix}d{t}", 2 + k, 1, "SUPPORT" if k == 0 else "CONTRADICT"))
    with open(folder / "corpus.jsonl", "w") as handle:
        handle.writelines(json.dumps(doc) + "\n" for doc in corpus)
    with open(folder / "queries.jsonl", "w") as handle:
        handle.writelines(json.dumps(q) + "\n" for q in queries)
    for split in ("train", "val"):
        with open(folder / "qrels" / f"{split}.tsv", "w") as handle:
            handle.write("query-id\tcorpus-id\tscore\n")
            handle.writelines(f"{q}\t{d}\t{s}\n" for q, d, s in qrels[split])
        with open(folder / "slot_qrels" / f"{split}.tsv", "w") as handle:
            handle.write("query-id\tcorpus-id\tslot-index\tscore\tstance\n")
            handle.writelines("\t".join(map(str, row)) + "\n" for row in slots[split])
    if unanswerable:
        (folder / "unanswerable").mkdir()
        with open(folder / "unanswerable" / "train.tsv", "w") as handle:
            handle.write("query-id\tcorpus-id\n")
            handle.writelines(f"{prefix}q{t}-0\t{prefix}d{(t + 1) % len(topics)}\n" for t in range(len(topics)))
    return folder


def tiny_training(output: Path, epochs: int, **overrides):
    """`TrainingArguments` sized for these datasets: a few queries per step, few negatives, quick warm-up."""
    from spicy_lentil.training.arguments import TrainingArguments

    sizes = dict(queries_per_step=4, negatives=3, negative_pool=6, candidates=10, warmup_steps=2, learning_rate=3e-3)
    return TrainingArguments(output=str(output), epochs=epochs, **{**sizes, **overrides})
