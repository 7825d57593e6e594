"""Hugging Face models from a local folder: ``neuronshapley run --model hf:PATH``.

The folder is what ``model.save_pretrained(folder)`` and ``tokenizer.save_pretrained(folder)``
write (``config.json``, ``model.safetensors`` or ``pytorch_model.bin``, tokenizer files).
It is loaded with ``local_files_only=True`` and ``trust_remote_code=False``: nothing is ever
downloaded and no code from the folder runs. A config whose architecture ends in
``ForSequenceClassification`` loads with ``AutoModelForSequenceClassification``, one ending in
``ForCausalLM`` with ``AutoModelForCausalLM``, any other with ``AutoModel``. The tokenizer is
the folder's own (``AutoTokenizer``), used to tokenize text data
(:func:`neuronshapley.pipeline.data.load_text_data`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from neuronshapley.errors import ModelLoadError

PREFIX = "hf:"
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "pytorch_model.bin.index.json")
_SAVE_HINT = ("save one with model.save_pretrained(folder) and "
              "tokenizer.save_pretrained(folder)")


def is_hf_spec(text: str) -> bool:
    return text.startswith(PREFIX)


def load_hf(spec: str) -> tuple[Any, Any, list[str]]:
    """(model in eval mode, tokenizer or None, notes) from ``"hf:PATH"`` (see module doc)."""
    folder = Path(spec[len(PREFIX):]).expanduser()
    if not str(spec[len(PREFIX):]).strip():
        raise ModelLoadError(f"--model hf:PATH needs a local folder after 'hf:'; {_SAVE_HINT}")
    if not folder.exists():
        raise ModelLoadError(
            f"model folder {str(folder)!r} does not exist: hf:PATH takes a local folder "
            f"(models are never downloaded); {_SAVE_HINT}"
        )
    if not folder.is_dir():
        raise ModelLoadError(f"hf:{folder} is a file; hf:PATH takes the folder that "
                             f"save_pretrained wrote ({_SAVE_HINT})")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(
            f"{folder} is not a Hugging Face model folder (no config.json); {_SAVE_HINT}"
        )
    try:
        raw = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{config_file} cannot be read as JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{config_file} does not hold a JSON object")
    if raw.get("auto_map"):
        raise ModelLoadError(
            f"the model in {folder} needs its own code (config.json has 'auto_map'), and "
            "neuronshapley never runs code from a model folder (trust_remote_code=False): "
            "use a model whose architecture ships with transformers, or load it yourself and "
            "use the Python API (ModelGame)"
        )
    if not any((folder / name).is_file() for name in _WEIGHTS):
        raise ModelLoadError(
            f"{folder} has a config.json but no weights ({', '.join(_WEIGHTS[::2])}); "
            f"{_SAVE_HINT}"
        )
    try:
        import transformers
    except ImportError:
        raise ModelLoadError(
            "hf:PATH models need the transformers package: pip install "
            "'neuronshapley[transformers]'"
        ) from None
    logging.getLogger("transformers").setLevel(logging.ERROR)
    arch = " ".join(str(a) for a in raw.get("architectures") or [])
    if arch.endswith("ForSequenceClassification") or "ForSequenceClassification" in arch:
        auto = transformers.AutoModelForSequenceClassification
    elif "ForCausalLM" in arch:
        auto = transformers.AutoModelForCausalLM
    else:
        auto = transformers.AutoModel
    opts = {"local_files_only": True, "trust_remote_code": False}
    hf_logging = transformers.utils.logging
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # one-line messages on the command line
    try:
        model = auto.from_pretrained(str(folder), **opts)
    except (ValueError, OSError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "trust_remote_code" in str(exc) or "custom code" in str(exc):
            raise ModelLoadError(
                f"the model in {folder} needs its own code, and neuronshapley never runs code "
                "from a model folder (trust_remote_code=False)"
            ) from None
        raise ModelLoadError(f"transformers cannot load the model in {folder}: {first}") \
            from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    model.eval()
    notes = [f"Hugging Face model {type(model).__name__} from {folder} (loaded with "
             f"{auto.__name__}, local files only)"]
    tokenizer = None
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), **opts)
    except (ValueError, OSError, KeyError, TypeError):
        notes.append(f"no tokenizer in {folder}: text data cannot be tokenized")
    return model, tokenizer, notes


def max_positions(model: Any, tokenizer: Any = None) -> int | None:
    """The longest sequence the model takes (its position table), or None if unknown."""
    config = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    value = getattr(tokenizer, "model_max_length", None)
    return value if isinstance(value, int) and 0 < value < 1_000_000 else None
