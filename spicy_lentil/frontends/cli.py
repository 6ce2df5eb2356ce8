"""The `spicy-lentil` command line: its flags and their defaults (read from the dataclasses); `commands` runs them."""

from __future__ import annotations

import argparse
import sys

from ..corpus.token_codec import CodecSpec
from ..errors import SpicyLentilError, check_count
from ..network.config import BUNDLED_ENCODER as BUNDLED
from ..network.config import FUSIONS, TUNING_NEGATIVES, SpicyLentilConfig
from ..training.arguments import TrainingArguments
from ..training.encoder_tuning import EncoderTuningArguments
from ..training.recipe import Recipe
from .commands import cmd_app, cmd_eval, cmd_index, cmd_score, cmd_search, cmd_serve, cmd_train


def _positive(text: str) -> int:
    try:
        return check_count(int(text), "value")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}") from None


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return seconds


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of at least 0, got {text}")
    return value


def _shared_flags() -> dict[str, argparse.ArgumentParser]:
    """Parent parsers of the flags several commands share, each flag defined once."""
    flags = {name: argparse.ArgumentParser(add_help=False) for name in ("model", "k", "engine", "cache", "host")}
    flags["model"].add_argument("--model", default=None, help="model folder (default: the bundled model)")
    flags["k"].add_argument(
        "--pathways-per-query",
        type=_positive,
        default=SpicyLentilConfig.pathways_per_query,
        help="the gate's top-k, 1..9",
    )
    engine = flags["engine"]
    engine.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: actors on a Ray cluster (needs the [ray] extra)",
    )
    engine.add_argument(
        "--address",
        default=None,
        metavar="auto|HOST:PORT",
        help="Ray cluster to join (default: RAY_ADDRESS, else a cluster started on this machine)",
    )
    engine.add_argument(
        "--concurrency",
        type=_positive,
        default=None,
        metavar="N",
        help="Ray actors, each loading the model once (default: one per --cpus-per-actor cluster CPUs)",
    )
    engine.add_argument(
        "--cpus-per-actor", type=_positive, default=1, metavar="N", help="CPUs (and threads) of each Ray actor"
    )
    flags["cache"].add_argument(
        "--cache-dir", default=Recipe.cache_dir, help="where corpus indexes and baselines are kept"
    )
    flags["host"].add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: loopback only; 0.0.0.0 for every interface)"
    )
    return flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spicy-lentil", description="Relevance fields: which parts of these texts matter for this query, and why."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    flags = _shared_flags()
    model, k, engine, cache, host = (flags[name] for name in ("model", "k", "engine", "cache", "host"))

    score = commands.add_parser(
        "score",
        parents=[model, k, engine],
        help='score documents (.txt/.md files, JSONL rows {"_id","text"} in .jsonl/.ndjson, or - for stdin)',
    )
    score.add_argument("--query", required=True, help="the query text")
    score.add_argument(
        "files", nargs="+", metavar="FILE", help=".txt/.md or .jsonl/.ndjson files, or - for JSONL on stdin"
    )
    score.add_argument("--out", default=None, help="output JSONL (default: stdout); rejects go to OUT.rejects.jsonl")
    score.add_argument("--batch-size", type=_positive, default=32)
    score.add_argument(
        "--format", choices=("jsonl", "parquet"), default="jsonl", help="output format (parquet needs --out)"
    )
    score.add_argument(
        "--resume", action="store_true", help="continue an existing --out: skip the _ids it already holds"
    )
    score.add_argument(
        "--overwrite", action="store_true", help="replace an existing --out (without this or --resume, it is refused)"
    )
    score.add_argument("--threads", type=int, default=0, help="CPU cores to use (default: all physical cores)")
    score.set_defaults(handler=cmd_score)

    index = commands.add_parser(
        "index", parents=[model, engine], help="index a JSONL corpus once: slots, embeddings, BM25 (resumable)"
    )
    index.add_argument("corpus", metavar="CORPUS.jsonl")
    index.add_argument("--output", required=True, help="index folder")
    index.add_argument("--shard-size", type=_positive, default=1000, help="documents per shard")
    index.add_argument("--resume", action="store_true", help="continue an interrupted build")
    index.add_argument(
        "--code-bytes",
        type=_positive,
        default=CodecSpec().code_bytes,
        help="bytes of each compressed token vector's residual (must divide the embedding dimension)",
    )
    index.add_argument(
        "--exact",
        action="store_true",
        help="store token vectors uncompressed: the same scores as scoring the text, several times the bytes",
    )
    index.set_defaults(handler=cmd_index)

    search = commands.add_parser(
        "search", parents=[model, k], help="search an indexed corpus: first stage, then rerank with relevance fields"
    )
    search.add_argument("index", metavar="INDEX", help="index folder written by `spicy-lentil index`")
    search.add_argument("--query", required=True)
    search.add_argument("--top-k", type=_positive, default=10)
    search.add_argument("--candidates", type=_positive, default=100, help="first-stage documents reranked")
    search.set_defaults(handler=cmd_search)

    train = commands.add_parser(
        "train", parents=[k, cache], help="train on one or more BEIR folders, pairs files or hub names"
    )
    train.add_argument(
        "data", metavar="DATA", nargs="+", help="BEIR folder, .jsonl/.csv/.parquet pairs file, or hub name"
    )
    train.add_argument("--output", required=True, help="folder for the best model and checkpoints")
    train.add_argument(
        "--mix",
        default=None,
        metavar="NAME=W,...",
        help="sampling weight of each dataset (its folder or file name), e.g. scifact=1,wikiqa=2; default 1 each",
    )
    train.add_argument(
        "--rank-documents",
        default=None,
        metavar="NAME,...",
        help="datasets whose validation nDCG@10 counts in picking the kept epoch (default: all); "
        "slot MAP counts for every dataset",
    )
    train.add_argument("--split", default=Recipe.split)
    train.add_argument(
        "--validation-split", default=Recipe.validation_split, help="split that picks the best epoch ('' for none)"
    )
    train.add_argument("--epochs", type=_positive, default=TrainingArguments.epochs)
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    train.add_argument(
        "--tune-encoder",
        action="store_true",
        help="first tune the encoder on the datasets' sentence labels (written to OUTPUT/encoder.safetensors)",
    )
    train.add_argument(
        "--tune-epochs", type=_positive, default=EncoderTuningArguments.epochs, help="epochs of --tune-encoder"
    )
    train.add_argument(
        "--tune-negatives",
        choices=TUNING_NEGATIVES,
        default=EncoderTuningArguments.negatives,
        help="each --tune-encoder triplet's negative: a random other sentence of the document, or the one the "
        "untuned encoder ranks closest to the query",
    )
    train.add_argument(
        "--reader-epochs",
        type=_non_negative_float,
        default=0.0,
        metavar="F",
        help="first train a cross-encoder reader for F epochs of the sentence labels (OUTPUT/reader.safetensors): "
        "it reads query and sentence together, and scoring gets many times slower (BENCHMARKS.md); 0: no reader",
    )
    train.add_argument(
        "--train-encoder", action="store_true", help="fine-tune the whole encoder with the head (meant for a GPU)"
    )
    train.add_argument("--init", default=None, help="start from this model folder instead of a fresh head")
    train.add_argument("--encoder", default=BUNDLED, help="sentence-transformers encoder of a fresh head")
    train.add_argument("--fusion", choices=FUSIONS, default=SpicyLentilConfig.fusion)
    train.add_argument(
        "--hidden-dim",
        type=_positive,
        default=SpicyLentilConfig.hidden_dim,
        help="width of a fresh head's pathways, a multiple of 9",
    )
    train.add_argument("--queries-per-step", type=_positive, default=TrainingArguments.queries_per_step)
    train.add_argument(
        "--negatives", type=_positive, default=TrainingArguments.negatives, help="hard negatives per query and step"
    )
    train.add_argument(
        "--validation-queries",
        type=_positive,
        default=TrainingArguments.validation_queries,
        help="validation queries per dataset and epoch, the first by id",
    )
    train.add_argument(
        "--calibration-cases",
        default=TrainingArguments.calibration_cases,
        metavar="JSONL",
        help="everyday-style answer cases (data/everyday.jsonl's format) the calibration also fits on, "
        "as one more dataset",
    )
    train.add_argument("--learning-rate", type=float, default=TrainingArguments.learning_rate)
    train.add_argument("--seed", type=int, default=TrainingArguments.seed)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "eval", parents=[model, k, cache], help="rank a split over the whole corpus and score labelled slots"
    )
    evaluate.add_argument("data", metavar="DATA")
    evaluate.add_argument("--split", required=True)
    evaluate.add_argument(
        "--baselines", action="store_true", help="also BM25, dense, fusion and a fine-tuned bi-encoder"
    )
    evaluate.add_argument(
        "--baseline-train-split", default="train", help="split the bi-encoder baselines are trained on"
    )
    evaluate.add_argument(
        "--sentence-baseline-data",
        nargs="+",
        default=None,
        metavar="DATA",
        help="datasets whose sentence labels tune the sentence-level bi-encoder baseline (default: DATA)",
    )
    evaluate.add_argument("--candidates", type=_positive, default=100)
    evaluate.add_argument("--output", default=None, help="metrics JSON (default: stdout)")
    evaluate.add_argument(
        "--runs", default=None, metavar="DIR", help="also write each system's ranking as DIR/<system>.run (TREC format)"
    )
    evaluate.set_defaults(handler=cmd_eval)

    serve = commands.add_parser(
        "serve", parents=[model, k, host], help="HTTP service: Cohere and TEI rerank, highlight, prune (docs at /docs)"
    )
    serve.add_argument("--port", type=_positive, default=8000)
    from .service_limits import API_KEY_ENV, Limits

    defaults = Limits()
    for flag, default, what in (
        ("--max-body-bytes", defaults.max_body_bytes, "largest request body"),
        ("--max-documents", defaults.max_documents, "documents per request"),
        ("--max-document-chars", defaults.max_document_chars, "characters per document"),
    ):
        serve.add_argument(flag, type=_positive, default=default, help=f"{what} (default: %(default)s)")
    serve.add_argument(
        "--max-request-seconds",
        type=_positive_seconds,
        default=defaults.max_request_seconds,
        help="scoring time per request, the wait for the model included; past it, a 503 (default: %(default)s)",
    )
    serve.add_argument(
        "--api-key",
        default=None,
        help=f"require this key (Authorization: Bearer KEY or X-API-Key); default: ${API_KEY_ENV}, unset = open",
    )
    serve.set_defaults(handler=cmd_serve)

    app = commands.add_parser("app", parents=[host], help="open the Streamlit app on the demo corpus")
    app.add_argument("--model", default=None, help="model folder selected first (default: the bundled model)")
    app.add_argument(
        "--model-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="another model folder visitors may choose (repeat for more); visitors never type a path",
    )
    app.add_argument("--port", type=_positive, default=8501)
    app.set_defaults(handler=cmd_app)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..runtime import configure

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command not in ("app", "train"):  # the app's own process, and the recipe, configure themselves
            configure(threads=getattr(args, "threads", 0))
        return args.handler(args)
    except (SpicyLentilError, ValueError, TypeError, OSError) as error:
        print(f"spicy-lentil {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

