"""PanoCaptioner: a small panorama captioner that trains on CPU in about a minute.

It exists to exercise the training loop end to end with a loss that means something: the demo
annotations name the room, its lighting and its furnishing ("A furnished bedroom under warm
light, with a door and 1 window."), which the pixels carry (tint, furniture, layout).

The model contract the loop relies on (and a `--model module:Class` must follow): `forward`
takes the collated batch dict and returns one loss per sample, shape (B,), so the loop can
mask placeholder samples out. Nothing couples samples (GroupNorm, not BatchNorm), so a masked
placeholder has no effect at all on the update.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from panovlm.config import ConfigError

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-case words and punctuation marks."""
    return _WORD.findall(text.lower())


class PanoCaptioner(nn.Module):
    """CNN image encoder (plus global colour statistics) and a GRU word decoder."""

    def __init__(
        self,
        vocab: Sequence[str],
        text_column: str = "annotation",
        width: int = 128,
        max_tokens: int = 32,
    ) -> None:
        super().__init__()
        if tuple(vocab[: len(SPECIALS)]) != SPECIALS:
            vocab = [*SPECIALS, *(word for word in vocab if word not in SPECIALS)]
        self.vocab = list(vocab)
        self.text_column = text_column
        self.max_tokens = max_tokens
        self.init_kwargs = {
            "vocab": self.vocab,
            "text_column": text_column,
            "width": width,
            "max_tokens": max_tokens,
        }
        self._index = {word: i for i, word in enumerate(self.vocab)}
        channels = (3, 32, 64, 128, 128)
        self.encoder = nn.Sequential(
            *(_down(c_in, c_out) for c_in, c_out in itertools.pairwise(channels)),
            nn.AdaptiveAvgPool2d((1, 4)),  # keep a little of the panorama's left-to-right layout
            nn.Flatten(),
        )
        self.project = nn.Linear(channels[-1] * 4 + 6, width)
        self.embed = nn.Embedding(len(self.vocab), width, padding_idx=PAD)
        self.decoder = nn.GRU(width, width, batch_first=True)
        self.head = nn.Linear(width, len(self.vocab))

    @classmethod
    def from_dataset(
        cls, dataset: Any, text_column: str | None = None, **options: Any
    ) -> PanoCaptioner:
        """A captioner for `dataset`'s target column, with a vocabulary built from it."""
        columns = tuple(dataset.text_columns)
        if not columns:
            raise ConfigError(
                "the manifest has no text column to caption; scan with the annotations "
                "(`sanitize scan DATA --csv annotations.csv`) so each image has its text"
            )
        if text_column is None:
            preferred = [c for c in ("annotation", "response", "caption", "text") if c in columns]
            text_column = preferred[0] if preferred else columns[-1]
        elif text_column not in columns:
            raise ConfigError(
                f"model.options.text_column: the manifest has no text column {text_column!r} "
                f"(it has {', '.join(columns)})"
            )
        counts = Counter(word for text in dataset.texts(text_column) for word in tokenize(text))
        return cls(sorted(counts), text_column=text_column, **options)

    def forward(self, batch: dict) -> torch.Tensor:
        """Per-sample caption loss (mean cross-entropy over each caption's tokens), shape (B,)."""
        features = self.encode(batch["image"])
        tokens = self.encode_text(batch[self.text_column]).to(features.device)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        logits = self.decode(features, inputs)
        losses = F.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=PAD, reduction="none"
        )
        counts = (targets != PAD).sum(dim=1).clamp(min=1)
        return losses.sum(dim=1) / counts

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        colour = torch.cat([images.mean(dim=(2, 3)), images.std(dim=(2, 3))], dim=1)
        return torch.tanh(self.project(torch.cat([self.encoder(images - 0.5), colour], dim=1)))

    def decode(self, features: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(inputs) + features[:, None, :]
        hidden, _ = self.decoder(embedded, features[None].contiguous())
        return self.head(hidden)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Token ids: <bos> words <eos>, padded; at most `max_tokens` ids per caption."""
        rows = [
            [*[BOS, *(self._index.get(w, UNK) for w in tokenize(t))][: self.max_tokens - 1], EOS]
            for t in texts
        ]
        ids = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        return ids

    @torch.no_grad()
    def caption(self, images: torch.Tensor) -> list[str]:
        """Greedy captions for a batch of images."""
        features = self.encode(images)
        tokens = torch.full((len(images), 1), BOS, dtype=torch.long, device=images.device)
        for _ in range(self.max_tokens - 1):
            next_token = self.decode(features, tokens)[:, -1].argmax(dim=-1, keepdim=True)
            tokens = torch.cat([tokens, next_token], dim=1)
        captions = []
        for row in tokens[:, 1:].tolist():
            words = [self.vocab[i] for i in (row[: row.index(EOS)] if EOS in row else row)]
            captions.append(re.sub(r" ([.,;:!?])", r"\1", " ".join(words)))
        return captions


def _down(c_in: int, c_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GroupNorm(8, c_out), nn.SiLU()
    )
