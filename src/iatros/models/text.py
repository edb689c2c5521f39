"""Sequence taggers for clinical / biomedical named-entity recognition.

`BiLSTMCRF` (Lample et al. 2016 style): word embeddings trained from scratch (lower-cased,
digits folded), a character CNN, a word-shape embedding, a bidirectional LSTM and a linear-chain
CRF. Tag ids follow the metrics module's BIO convention (0 = O, 2k+1 = B-type k, 2k+2 = I-type k).

It plugs into the one Trainer like every torch model: its `dataset` builder pads each sentence to
the longest one in the set (so batches concatenate), and the gold tags travel with the inputs
because a CRF's likelihood needs the gold path. The network returns an (N, 1 + L) tensor: column
0 the sentence's negative log-likelihood (0 without gold tags), columns 1: the Viterbi tag ids
(-1 on padding). The vocabulary is built from the training sentences by `n_inputs` and stored
in the model's params, so a saved run carries it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from iatros.errors import ConfigError
from iatros.kinds import Modality, TargetKind
from iatros.models.registry import ModelSpec, register_model

PAD, UNK = 0, 1
_DIGITS = re.compile(r"\d")


def word_key(token: str) -> str:
    """The word-embedding key of a token: lower-cased, every digit folded to 0."""
    return _DIGITS.sub("0", token.lower())


def shape_id(token: str) -> int:
    """Coarse casing/shape class: 1 lower, 2 ALL CAPS, 3 Title, 4 MiXed, 5 has digit, 6 other."""
    if any(c.isdigit() for c in token):
        return 5
    if not any(c.isalpha() for c in token):
        return 6
    if token.islower():
        return 1
    if token.isupper():
        return 2
    if token[0].isupper() and token[1:].islower():
        return 3
    return 4


def build_vocabulary(sentences: Any, params: dict[str, Any]) -> int:
    """Word and character vocabularies from the training sentences, stored in `params`.

    Called once by the Trainer's setup (as the spec's `n_inputs`); returns the word count.
    Words seen fewer than `min_count` times map to the unknown word.
    """
    if "vocab" not in params:
        counts = Counter(word_key(t) for s in sentences for t in s)
        min_count = int(params.get("min_count", 1))
        params["vocab"] = sorted(w for w, c in counts.items() if c >= min_count)
        params["chars"] = sorted({c for s in sentences for t in s for c in t})
    if not params["vocab"]:
        raise ConfigError("cannot build a vocabulary: the training sentences hold no tokens")
    return len(params["vocab"]) + 2


class TaggingDataset(Dataset):
    """Sentences as padded index tensors; items are ({words, chars, shapes, tags}, tags)."""

    def __init__(self, sentences: Any, tags: Any, params: dict[str, Any]) -> None:
        words = {w: i + 2 for i, w in enumerate(params["vocab"])}
        chars = {c: i + 2 for i, c in enumerate(params["chars"])}
        wlen = int(params.get("max_word_len", 25))
        sentences = list(sentences)
        length = max([len(s) for s in sentences] + [1])
        n = len(sentences)
        self.words = torch.zeros((n, length), dtype=torch.long)
        self.shapes = torch.zeros((n, length), dtype=torch.long)
        self.chars = torch.zeros((n, length, wlen), dtype=torch.long)
        self.tags = torch.full((n, length), -1, dtype=torch.long)
        for i, sentence in enumerate(sentences):
            for j, token in enumerate(sentence):
                self.words[i, j] = words.get(word_key(token), UNK)
                self.shapes[i, j] = shape_id(token)
                ids = [chars.get(c, UNK) for c in token[:wlen]] or [UNK]
                self.chars[i, j, :len(ids)] = torch.tensor(ids)
            gold = tags[i] if tags is not None else None
            if gold is not None and np.ndim(gold) == 1 and len(gold) == len(sentence):
                self.tags[i, :len(sentence)] = torch.as_tensor(np.asarray(gold, dtype=np.int64))
        self.context: list[torch.Tensor] | None = None
        if params.get("encoder"):
            from iatros.models.encoders import word_vectors

            vectors = word_vectors([list(s) for s in sentences], params["encoder"])
            self.context = [torch.from_numpy(v).to(torch.float16) for v in vectors]

    def __len__(self) -> int:
        return len(self.words)

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        inputs = {"words": self.words[i], "chars": self.chars[i], "shapes": self.shapes[i],
                  "tags": self.tags[i]}
        if self.context is not None:
            vectors = self.context[i]
            padded = torch.zeros((self.words.shape[1], vectors.shape[1]))
            padded[:len(vectors)] = vectors.float()
            inputs["context"] = padded
        return inputs, self.tags[i]


def tagging_dataset(inputs: Any, targets: Any, kind: TargetKind, *, train: bool,
                    params: dict[str, Any]) -> Dataset:
    return TaggingDataset(inputs, targets, params)


class CRF(nn.Module):
    """Linear-chain CRF: transition scores, negative log-likelihood and Viterbi decoding."""

    def __init__(self, n_tags: int) -> None:
        super().__init__()
        self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))  # [from, to]
        self.start = nn.Parameter(torch.zeros(n_tags))
        self.end = nn.Parameter(torch.zeros(n_tags))

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-sentence -log p(tags | emissions); emissions (B, L, T), mask (B, L) bool."""
        b, length, _ = emissions.shape
        tags = tags.clamp(min=0)
        idx = torch.arange(b, device=emissions.device)
        gold = self.start[tags[:, 0]] + emissions[idx, 0, tags[:, 0]]
        alpha = self.start + emissions[:, 0]
        for t in range(1, length):
            m = mask[:, t]
            step = self.transitions[tags[:, t - 1], tags[:, t]] + emissions[idx, t, tags[:, t]]
            gold = gold + step * m
            nxt = torch.logsumexp(alpha.unsqueeze(2) + self.transitions + emissions[:, t].unsqueeze(1),
                                  dim=1)
            alpha = torch.where(m.unsqueeze(1), nxt, alpha)
        last = tags[idx, mask.sum(1) - 1]
        gold = gold + self.end[last]
        return torch.logsumexp(alpha + self.end, dim=1) - gold

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tag path per sentence, (B, L), -1 on padding."""
        b, length, n = emissions.shape
        score = self.start + emissions[:, 0]
        back = []
        for t in range(1, length):
            total = score.unsqueeze(2) + self.transitions + emissions[:, t].unsqueeze(1)
            best, arg = total.max(dim=1)
            m = mask[:, t].unsqueeze(1)
            score = torch.where(m, best, score)
            back.append(torch.where(m, arg, torch.arange(n, device=arg.device).expand_as(arg)))
        score = score + self.end
        best_last = score.argmax(dim=1)
        path = [best_last]
        for arg in reversed(back):
            best_last = arg.gather(1, best_last.unsqueeze(1)).squeeze(1)
            path.append(best_last)
        out = torch.stack(list(reversed(path)), dim=1)
        return torch.where(mask, out, torch.full_like(out, -1))


class BiLSTMCRF(nn.Module):
    """Word + char-CNN + shape embeddings -> BiLSTM -> CRF; see the module docstring."""

    def __init__(self, n_words: int, n_tags: int, *, vocab: list[str] | None = None,
                 chars: list[str] | None = None, word_dim: int = 100, char_dim: int = 30,
                 char_filters: int = 50, shape_dim: int = 10, hidden: int = 100, layers: int = 1,
                 dropout: float = 0.5, word_dropout: float = 0.05, encoder: str | None = None,
                 context_dim: int = 100, **_: Any) -> None:
        super().__init__()
        self.context: nn.Linear | None = None
        if encoder:
            from iatros.models.encoders import encoder_dim

            self.context = nn.Linear(encoder_dim(encoder), context_dim)
        n_chars = len(chars or []) + 2
        self.word_dropout = word_dropout
        self.words = nn.Embedding(n_words, word_dim, padding_idx=PAD)
        self.chars = nn.Embedding(n_chars, char_dim, padding_idx=PAD)
        self.char_cnn = nn.Conv1d(char_dim, char_filters, kernel_size=3, padding=1)
        self.shapes = nn.Embedding(7, shape_dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        extra = context_dim if self.context is not None else 0
        self.lstm = nn.LSTM(word_dim + char_filters + shape_dim + extra, hidden,
                            num_layers=layers, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * hidden, n_tags)
        self.crf = CRF(n_tags)

    def emissions(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        words = inputs["words"]
        mask = words != PAD
        length = max(int(mask.sum(1).max()), 1)
        words, mask = words[:, :length], mask[:, :length]
        chars, shapes = inputs["chars"][:, :length], inputs["shapes"][:, :length]
        if self.training and self.word_dropout:
            drop = (torch.rand(words.shape, device=words.device) < self.word_dropout) & mask
            words = words.masked_fill(drop, UNK)
        b, n, w = chars.shape
        c = self.chars(chars.reshape(b * n, w)).transpose(1, 2)
        c = torch.relu(self.char_cnn(c)).max(dim=2).values.reshape(b, n, -1)
        parts = [self.words(words), c, self.shapes(shapes)]
        if self.context is not None:
            parts.append(self.context(inputs["context"][:, :length].to(c.dtype)))
        x = self.dropout(torch.cat(parts, dim=-1))
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=n)
        mask[:, 0] = True  # an empty sentence still gets one (padding) position to decode
        return self.project(self.dropout(out)), mask

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        full = inputs["words"].shape[1]
        em, mask = self.emissions(inputs)
        em = em.float()
        tags = inputs.get("tags")
        nll = torch.zeros(len(em), device=em.device)
        if tags is not None:
            tags = tags[:, :em.shape[1]]
            has_gold = (tags >= 0).any(dim=1)
            if has_gold.any():
                nll = torch.where(has_gold, self.crf.nll(em, tags, mask & (tags >= 0) | mask), nll)
        if self.training:
            decoded = torch.full((len(em), full), -1.0, device=em.device)
        else:
            path = self.crf.decode(em, mask & (inputs["words"][:, :em.shape[1]] != PAD)).float()
            decoded = torch.full((len(em), full), -1.0, device=em.device)
            decoded[:, :path.shape[1]] = path
        return torch.cat([nll.unsqueeze(1), decoded], dim=1)


def _build(n_inputs: int, n_outputs: int, **params: Any) -> nn.Module:
    return BiLSTMCRF(n_inputs, n_outputs, **params)


_TAGGER_PARAMS = {"word_dim": 100, "char_dim": 30, "char_filters": 50, "hidden": 100,
                  "dropout": 0.5, "word_dropout": 0.05, "max_word_len": 25, "min_count": 1}
_TAGGER_TRAINING = {"epochs": 40, "batch_size": 32, "lr": 2e-3, "optimizer": "adam",
                    "weight_decay": 0.0, "scheduler": "cosine", "patience": 8, "grad_clip": 5.0}


register_model(ModelSpec(
    name="bilstm-crf",
    family="torch",
    modalities=(Modality.TEXT,),
    build=_build,
    description="BiLSTM-CRF sequence tagger with character-CNN and word-shape features, trained "
                "from scratch (no pretrained embeddings)",
    params=_TAGGER_PARAMS,
    train_defaults=_TAGGER_TRAINING,
    dataset=tagging_dataset,
    n_inputs=build_vocabulary,
    kinds=(TargetKind.TOKENS,), private_params=("vocab", "chars"),
))

register_model(ModelSpec(
    name="bilstm-crf-minilm",
    family="torch",
    modalities=(Modality.TEXT,),
    build=_build,
    description="the BiLSTM-CRF tagger plus frozen contextual word vectors from the general-domain "
                "all-MiniLM-L6-v2 encoder (not biomedical; needs iatros[encoder])",
    params={**_TAGGER_PARAMS, "encoder": "minilm", "context_dim": 100},
    train_defaults={**_TAGGER_TRAINING, "epochs": 25, "patience": 6},
    dataset=tagging_dataset,
    n_inputs=build_vocabulary,
    kinds=(TargetKind.TOKENS,), private_params=("vocab", "chars"),
))


# --------------------------------------------------------------------------------------------
# Note classification: tf-idf + logistic regression, with word attributions
# --------------------------------------------------------------------------------------------
def _tfidf_logreg(kind: TargetKind, seed: int, *, C: float = 10.0, max_features: int = 50_000,
                  ngram_max: int = 2, min_df: int = 2, **_: Any) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("tfidf", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, ngram_max), min_df=min_df,
                                  max_features=max_features, strip_accents="unicode")),
        ("clf", LogisticRegression(C=C, max_iter=2000, class_weight="balanced", random_state=seed)),
    ])


def word_attributions(pipeline: Any, text: str, class_index: int, top: int = 10,
                      ) -> list[tuple[str, float]]:
    """Words (or bigrams) that pushed `text` toward class `class_index` most: the logistic
    regression's coefficient times the term's tf-idf value in this text (exact for a linear
    model: these terms sum, with the intercept, to the class's logit)."""
    tfidf, clf = pipeline.named_steps["tfidf"], pipeline.named_steps["clf"]
    x = tfidf.transform([text]).tocsr()
    coef = clf.coef_[0] if clf.coef_.shape[0] == 1 else clf.coef_[class_index]
    sign = -1.0 if clf.coef_.shape[0] == 1 and class_index == 0 else 1.0
    names = tfidf.get_feature_names_out()
    contrib = [(names[j], sign * float(v * coef[j])) for j, v in zip(x.indices, x.data, strict=True)]
    contrib.sort(key=lambda kv: -kv[1])
    return [(w, round(c, 4)) for w, c in contrib[:top] if c > 0]


def class_top_words(pipeline: Any, classes: Any, top: int = 10) -> dict[str, list[str]]:
    """The terms with the largest coefficient for each class (global view of the model)."""
    tfidf, clf = pipeline.named_steps["tfidf"], pipeline.named_steps["clf"]
    names = tfidf.get_feature_names_out()
    coef = clf.coef_ if clf.coef_.shape[0] > 1 else np.vstack([-clf.coef_[0], clf.coef_[0]])
    return {str(c): [str(names[j]) for j in np.argsort(-coef[k])[:top]]
            for k, c in enumerate(classes) if k < coef.shape[0]}


register_model(ModelSpec(
    name="tfidf-logreg",
    family="sklearn",
    modalities=(Modality.TEXT,),
    build=_tfidf_logreg,
    description="tf-idf (words and bigrams, sublinear tf) + class-balanced logistic regression",
    params={"C": 10.0, "max_features": 50_000, "ngram_max": 2, "min_df": 2},
    kinds=(TargetKind.BINARY, TargetKind.MULTICLASS), word_attributions=True,
))
