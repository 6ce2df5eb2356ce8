"""The training recipe as one function: tune the encoder (and train a reader), index each corpus, train the head,
calibrate.

`spicy-lentil train`, the benchmarks and the tests all call `train`; the command line only turns its flags
into a `Recipe`. Training sits below the front ends, so `train` is handed the facade class it builds
(`SpicyLentil`) instead of importing it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..corpus.builder import cached_index
from ..network.config import SpicyLentilConfig
from ..network.encoder import ENCODER_WEIGHTS_NAME
from ..network.reader import READER_WEIGHTS_NAME
from ..runtime import configure
from .arguments import TrainingArguments
from .data import load_data
from .encoder_tuning import EncoderTuningArguments, tune_encoder
from .evaluation import read_answer_cases
from .mixture import TrainingSet, parse_mix
from .reader_training import ReaderTrainingArguments, train_and_save_reader
from .trainer import Trainer


@dataclass
class Recipe:
    """Everything one training run does, as data (`spicy-lentil train` without flags is `Recipe(data, training)`)."""

    data: list[str]  # BEIR folders, .jsonl/.csv/.parquet pairs files or hub names: one dataset each
    training: TrainingArguments  # the trainer's arguments; `training.output` is the model folder
    model: SpicyLentilConfig = field(default_factory=SpicyLentilConfig)  # a fresh head's config (not with `init`)
    split: str = "train"  # the split trained on
    validation_split: str | None = "val"  # the split that picks the kept epoch and fits calibration; None: none
    mix: str | None = None  # `name=weight,...` sampling weights of the datasets; None: 1 each
    rank_documents: list[str] | None = None  # datasets whose nDCG@10 counts in picking the epoch; None: all
    tune_encoder: EncoderTuningArguments | None = None  # tune the encoder on the sentence labels first; None: keep it
    # train a cross-encoder reader (network/reader.py) on the sentence labels first; None: no reader
    reader: ReaderTrainingArguments | None = None
    init: str | None = None  # start from this model folder instead of a fresh head
    cache_dir: str = "cache"  # where corpus indexes (and hub downloads) are kept between runs
    resume: bool = False  # continue from the last checkpoint (and a finished tuning) in the output folder


def train(recipe: Recipe, facade) -> dict:
    """Runs `recipe`: the kept model, its calibration and the training log end up in `recipe.training.output`.

    Args:
        recipe: what to train.
        facade: the class the model is built as (`spicy_lentil.SpicyLentil`), with `new` and `from_pretrained`.

    Training sets this process's runtime for itself (`runtime.configure(parallel_batches=False)`: every core
    on one batch at a time, which large backward passes gain from); it stays so after `train` returns.

    Returns:
        The trainer's final state: `best_epoch`, `best` (the validation selection score) and the log.

    Raises:
        ValueError: `tune_encoder` with `init`, a malformed `mix`, an unknown dataset in `rank_documents`, or
            calibration cases without a validation split or named like a dataset.
        DataError: a dataset or the calibration cases cannot be read.
    """
    if recipe.tune_encoder is not None and recipe.init:
        raise ValueError("tuning the encoder starts a fresh model; it cannot be combined with init")
    if recipe.reader is not None and recipe.init:
        raise ValueError("training a reader starts a fresh model; it cannot be combined with init")
    output = Path(recipe.training.output)
    trains = [load_data(source, recipe.split, recipe.cache_dir) for source in recipe.data]
    names = [t.name for t in trains]
    weights = parse_mix(recipe.mix, names)
    unknown = sorted(set(recipe.rank_documents or []) - set(names))
    if unknown:
        raise ValueError(f"rank_documents: unknown dataset(s) {unknown}; the datasets are {names}")
    ranking = set(names) if recipe.rank_documents is None else set(recipe.rank_documents)
    if recipe.training.calibration_cases:
        if not recipe.validation_split:
            raise ValueError("calibration_cases: calibration needs a validation split, and there is none")
        if Path(recipe.training.calibration_cases).stem in names:  # the trainer names the cases by their file
            raise ValueError(f"calibration_cases: {recipe.training.calibration_cases} is named like a dataset")
        read_answer_cases(recipe.training.calibration_cases)  # a bad file fails now, not after training
    validations = [
        load_data(source, recipe.validation_split, recipe.cache_dir) if recipe.validation_split else None
        for source in recipe.data
    ]
    configure(parallel_batches=False)
    encoder_weights = None
    if recipe.tune_encoder is not None:
        encoder_weights = output / ENCODER_WEIGHTS_NAME
        if not (recipe.resume and encoder_weights.is_file()):
            print(f"tuning the encoder on the sentence labels of {', '.join(names)}", file=sys.stderr)
            tune_encoder(recipe.model.encoder, trains, output, replace(recipe.tune_encoder, seed=recipe.training.seed))
    config, reader_weights = recipe.model, None
    if recipe.reader is not None:
        # The reader starts from the encoder's base model, untuned, and never sees the head.
        config, reader_weights = replace(recipe.model, reader=recipe.model.encoder), output / READER_WEIGHTS_NAME
        if not (recipe.resume and reader_weights.is_file()):
            print(f"training the reader on the sentence labels of {', '.join(names)}", file=sys.stderr)
            train_and_save_reader(config, trains, reader_weights, replace(recipe.reader, seed=recipe.training.seed))
    if recipe.init:
        lentil = facade.from_pretrained(recipe.init)
    else:
        lentil = facade.new(
            config, seed=recipe.training.seed, encoder_weights=encoder_weights, reader_weights=reader_weights
        )
    sets = [
        TrainingSet(
            train,
            cached_index(train.corpus_path, lentil.encoder, lentil.slotter, recipe.cache_dir),
            validation,
            weights[train.name],
            train.name in ranking,
        )
        for train, validation in zip(trains, validations)
    ]
    return Trainer(lentil, recipe.training, sets).train(resume=recipe.resume)
