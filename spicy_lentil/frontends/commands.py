"""What each `spicy-lentil` command does, given its parsed flags (`cli` builds the parser): thin calls into the
public API, the recipe and the evaluation."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..corpus.token_codec import CodecSpec
from ..errors import ModelLoadError
from ..io import Rejects, holds_rows, read_documents
from ..network.config import SpicyLentilConfig
from ..training.arguments import TrainingArguments
from ..training.encoder_tuning import EncoderTuningArguments
from ..training.reader_training import ReaderTrainingArguments
from ..training.recipe import Recipe


def cmd_score(args: argparse.Namespace) -> int:
    from .engine import SpicyLentil
    from .jobs import claimed_output, rejects_path, score_job

    out_path = Path(args.out) if args.out else None
    job = {
        "query": args.query,
        "pathways_per_query": args.pathways_per_query,
        "model": str(Path(args.model).resolve()) if args.model else None,
    }
    # Claimed before the model loads: a second writer, a clash with an input or another job's output is
    # refused at once.
    with claimed_output(out_path, args.files, resume=args.resume, overwrite=args.overwrite, job=job):
        rejects = Rejects(rejects_path(out_path) if out_path else None, resume=args.resume)
        try:
            total = None
            if all(p != "-" for p in args.files):
                total = sum(_count_rows(p) for p in args.files)
            documents = read_documents(args.files, rejects)
            options = dict(
                output_format=args.format,
                resume=args.resume,
                batch_size=args.batch_size,
                total=total,
                pathways_per_query=args.pathways_per_query,
            )
            if args.engine == "ray":
                from . import distributed

                distributed.connect(args.address)
                summary = distributed.score_job(
                    args.query,
                    documents,
                    out_path,
                    rejects,
                    model=args.model,
                    concurrency=args.concurrency,
                    cpus_per_actor=args.cpus_per_actor,
                    **options,
                )
            else:
                lentil = SpicyLentil.from_pretrained(args.model)
                summary = score_job(lentil, args.query, documents, out_path, rejects, **options)
        finally:
            rejects.close()
    print(
        f"scored {summary['scored']} document(s), skipped {summary['skipped_already_done']} already done, "
        f"rejected {summary['rejected']} row(s)",
        file=sys.stderr,
    )
    return 1 if rejects.count else 0


def _count_rows(path: str) -> int:
    """The documents and rejects a file gives: its non-blank lines, or one (a text file, or one it cannot read)."""
    if not holds_rows(path):
        return 1
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return 1


def cmd_index(args: argparse.Namespace) -> int:
    from ..corpus.builder import build_index
    from .engine import SpicyLentil

    output = Path(args.output)
    token_codec = None if args.exact else CodecSpec(code_bytes=args.code_bytes)
    rejects = Rejects(output / "rejects.jsonl", resume=args.resume)
    try:
        if args.engine == "ray":
            from . import distributed

            distributed.connect(args.address)
            index = distributed.build_index(
                args.corpus,
                output,
                args.model,
                shard_size=args.shard_size,
                resume=args.resume,
                rejects=rejects,
                concurrency=args.concurrency,
                cpus_per_actor=args.cpus_per_actor,
                token_codec=token_codec,
            )
        else:
            lentil = SpicyLentil.from_pretrained(args.model)
            index = build_index(
                args.corpus,
                output,
                lentil.encoder,
                lentil.slotter,
                shard_size=args.shard_size,
                resume=args.resume,
                rejects=rejects,
                token_codec=token_codec,
            )
    finally:
        rejects.close()
    print(f"indexed {len(index)} document(s) into {output}, rejected {rejects.count} row(s)", file=sys.stderr)
    return 1 if rejects.count else 0


def cmd_search(args: argparse.Namespace) -> int:
    from .engine import SpicyLentil
    from .sinks import jsonl_line

    lentil = SpicyLentil.from_pretrained(args.model)
    results = lentil.search(
        args.index, args.query, top_k=args.top_k, candidates=args.candidates, pathways_per_query=args.pathways_per_query
    )
    for rank, result in enumerate(results, start=1):
        row = {
            "rank": rank,
            "_id": result["document_id"],
            "score": result["score"],
            "first_stage": result["first_stage"],
            "title": result["title"],
            "active": result["field"].active,
            "slots": [s.to_dict() for s in result["field"].slots],
        }
        sys.stdout.write(jsonl_line(row))
    return 0


def recipe_from_args(args: argparse.Namespace):
    """The `training.recipe.Recipe` that `spicy-lentil train` runs; a flag left out keeps the dataclasses' default."""
    return Recipe(
        data=args.data,
        training=TrainingArguments(
            output=args.output,
            epochs=args.epochs,
            seed=args.seed,
            train_encoder=args.train_encoder,
            queries_per_step=args.queries_per_step,
            learning_rate=args.learning_rate,
            negatives=args.negatives,
            validation_queries=args.validation_queries,
            calibration_cases=args.calibration_cases,
        ),
        model=SpicyLentilConfig(
            encoder=args.encoder,
            pathways_per_query=args.pathways_per_query,
            fusion=args.fusion,
            hidden_dim=args.hidden_dim,
        ),
        split=args.split,
        validation_split=args.validation_split or None,
        mix=args.mix,
        rank_documents=None if args.rank_documents is None else [n.strip() for n in args.rank_documents.split(",")],
        tune_encoder=EncoderTuningArguments(epochs=args.tune_epochs, negatives=args.tune_negatives)
        if args.tune_encoder
        else None,
        reader=ReaderTrainingArguments(epochs=args.reader_epochs) if args.reader_epochs else None,
        init=args.init,
        cache_dir=args.cache_dir,
        resume=args.resume,
    )


def cmd_train(args: argparse.Namespace) -> int:
    from ..training.recipe import train
    from .engine import SpicyLentil

    state = train(recipe_from_args(args), SpicyLentil)
    print(
        f"best epoch {state['best_epoch']} (validation selection score {state['best']:.4f}) saved to {args.output}",
        file=sys.stderr,
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..corpus.builder import cached_index
    from ..training.data import load_data
    from ..training.evaluation import evaluate
    from .engine import SpicyLentil

    data = load_data(args.data, args.split, args.cache_dir)
    lentil = SpicyLentil.from_pretrained(args.model)
    lentil.pathways_per_query = args.pathways_per_query
    started = time.perf_counter()
    index = cached_index(data.corpus_path, lentil.encoder, lentil.slotter, args.cache_dir)
    index_seconds = time.perf_counter() - started
    bi_encoder = sentence_bi_encoder = None
    if args.baselines:
        from ..training.baselines import FineTunedBiEncoder, SentenceBiEncoder

        bi_encoder = FineTunedBiEncoder(
            load_data(args.data, args.baseline_train_split, args.cache_dir), lentil.encoder.name, args.cache_dir
        )
        sources = args.sentence_baseline_data or [args.data]
        splits = [load_data(source, args.baseline_train_split, args.cache_dir) for source in sources]
        if any(split.slot_qrels for split in splits):
            sentence_bi_encoder = SentenceBiEncoder.trained(splits, lentil.encoder.name, args.cache_dir)
    result = evaluate(
        lentil,
        data,
        index,
        candidates=args.candidates,
        baselines=args.baselines,
        bi_encoder=bi_encoder,
        sentence_bi_encoder=sentence_bi_encoder,
    )
    result.seconds["index"] = index_seconds
    result.seconds["total"] = time.perf_counter() - started
    print(result.table())
    if args.runs:
        result.write_runs(args.runs)
    payload = json.dumps(result.to_dict(), indent=2)
    if args.output:
        Path(args.output).write_text(payload + "\n", encoding="utf-8")
    else:
        print(payload)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .engine import SpicyLentil
    from .server import serve
    from .service_limits import Limits

    lentil = SpicyLentil.from_pretrained(args.model)
    lentil.pathways_per_query = args.pathways_per_query
    limits = Limits(args.max_body_bytes, args.max_documents, args.max_document_chars, args.max_request_seconds)
    serve(
        lentil,
        Path(args.model).name if args.model else "spicy-lentil-default",
        args.host,
        args.port,
        limits,
        args.api_key,
    )
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    command, env = app_command(args, os.environ)
    os.execve(sys.executable, command, env)  # become streamlit, so signals reach it directly
    return 0


def app_command(args: argparse.Namespace, environ: dict) -> tuple[list[str], dict]:
    """The streamlit command line and environment of `spicy-lentil app`.

    Visitors choose only among the bundled model and the folders named here (each checked now), and
    Streamlit refuses uploads over the app's file limit before reading them.
    """
    from ..app import documents
    from ..app.documents import MAX_FILE_BYTES
    from ..app.service import MODEL_DIRS_ENV, MODEL_ENV

    # Found through the import system: the app's folder is repo/app in a checkout, spicy_lentil/app installed.
    script = Path(documents.__file__).resolve().with_name("streamlit_app.py")

    folders = [str(Path(folder).resolve()) for folder in [*([args.model] if args.model else []), *args.model_dir]]
    for folder in folders:
        if not (Path(folder) / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a Spicy Lentil model folder: config.json is missing")
    env = {key: value for key, value in environ.items() if key not in (MODEL_ENV, MODEL_DIRS_ENV)}
    if args.model:
        env[MODEL_ENV] = folders[0]
    if folders:
        env[MODEL_DIRS_ENV] = os.pathsep.join(dict.fromkeys(folders))
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.maxUploadSize",
        str(max(1, MAX_FILE_BYTES // (1024 * 1024))),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    return command, env
