"""Model folders: `config.json`, `model.safetensors` and the encoder they were built for.

Only JSON and safetensors are read: nothing a user hands over is unpickled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import ModelLoadError
from .config import SpicyLentilConfig
from .encoder import Encoder
from .model import SpicyLentilModel
from .reader import READER_WEIGHTS_NAME

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Buffers added after models were first saved; a folder without one loads it at its initial value,
# which leaves that model's scores as they were.
ADDED_BUFFERS = ("first_stage_trust", "reader_mix")


def load_checkpoint(folder: Path, device: str) -> tuple[SpicyLentilModel, Encoder]:
    """The model and encoder of a model folder.

    Raises:
        ModelLoadError: a file is missing, unreadable, damaged (NaN weights) or does not fit the config.
    """
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (folder / name).is_file():
            raise ModelLoadError(f"{folder} is not a Spicy Lentil model folder: {name} is missing")
    try:
        config = SpicyLentilConfig.load(folder / CONFIG_NAME)
    except (ValueError, TypeError) as error:
        raise ModelLoadError(f"{folder / CONFIG_NAME}: {error}") from error
    reader_weights = _model_file(folder, config.reader_weights, "reader_weights") if config.reader else None
    try:
        model = SpicyLentilModel(config)
    except OSError as error:  # the reader's base model is not on this machine
        raise ModelLoadError(f"{folder / CONFIG_NAME}: reader {config.reader!r} cannot be loaded: {error}") from error
    try:
        state = load_file(folder / WEIGHTS_NAME, device="cpu")
    except (SafetensorError, OSError, ValueError) as error:  # truncated, empty or not safetensors at all
        raise ModelLoadError(f"{folder / WEIGHTS_NAME} is not a readable safetensors file: {error}") from error
    damaged = sorted(
        name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    )
    if damaged:
        raise ModelLoadError(f"{folder / WEIGHTS_NAME} holds NaN or infinite weights in {damaged[:5]}")
    for name in ADDED_BUFFERS:
        state.setdefault(name, model.get_buffer(name))
    if model.reader is not None:
        try:
            model.reader.load_tuned(reader_weights)
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelLoadError(f"{reader_weights}: {error}") from error
        state.update({f"reader.{name}": value for name, value in model.reader.state_dict().items()})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelLoadError(f"{folder / WEIGHTS_NAME} does not fit {folder / CONFIG_NAME}: {error}") from error
    # The encoder loads last: the slowest step, and not worth taking for a folder found damaged.
    encoder_name = config.encoder
    if (folder / encoder_name).is_dir():  # an encoder fine-tuned with the head and saved beside it
        encoder_name = str(folder / encoder_name)
    weights = _model_file(folder, config.encoder_weights, "encoder_weights") if config.encoder_weights else None
    try:
        encoder = Encoder(encoder_name, device=device, weights=weights)
    except (ValueError, SafetensorError, OSError) as error:
        raise ModelLoadError(f"{weights}: {error}") from error
    return model.to(device), encoder


def _model_file(folder: Path, name: str, key: str) -> Path:
    """The file a config key names, which must lie in the model folder itself."""
    path = folder / name
    if not name or not path.is_file() or path.parent.resolve() != folder.resolve():
        raise ModelLoadError(f"{folder / CONFIG_NAME}: {key} must name a file in the model folder")
    return path


def save_checkpoint(folder: Path, model: SpicyLentilModel, encoder: Encoder, save_encoder: bool) -> None:
    """Writes the model folder: the whole encoder under `encoder/` when asked, else its tuned tensors if any;
    the reader's tuned tensors, where the model has a reader."""
    folder.mkdir(parents=True, exist_ok=True)
    config = SpicyLentilConfig(**model.config.to_dict())
    config.encoder_weights = ""
    if save_encoder:
        encoder.model.save(str(folder / "encoder"), safe_serialization=True)
        config.encoder = "encoder"
    elif encoder.weights is not None:
        target = folder / encoder.weights.name
        if target.resolve() != encoder.weights.resolve():
            shutil.copyfile(encoder.weights, target)
        config.encoder_weights = target.name
    if model.reader is not None:
        save_file(model.reader.tuned_state(), folder / READER_WEIGHTS_NAME, metadata={"base": config.reader})
        config.reader_weights = READER_WEIGHTS_NAME
    config.save(folder / CONFIG_NAME)
    # The reader's tensors live in their own file (float16, its frozen word embeddings left to the base model).
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("reader.")}
    save_file(state, folder / WEIGHTS_NAME, metadata={"format": "pt", "library": "spicy-lentil"})
