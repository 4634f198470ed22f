"""The in-memory datasets every task trains on: plain tensors, small enough to live on the device."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageData:
    """An image classification dataset held as whole tensors (CIFAR-10 and its synthetic twin).

    Images stay uint8 until a batch is drawn, so 50k CIFAR images take 150 MB and fit on any GPU.
    """

    train_images: torch.Tensor  # (N, 3, H, W) uint8
    train_labels: torch.Tensor  # (N,) int64
    test_images: torch.Tensor  # (M, 3, H, W) uint8
    test_labels: torch.Tensor  # (M,) int64
    classes: tuple[str, ...]

    def to(self, device: torch.device | str) -> ImageData:
        return ImageData(
            self.train_images.to(device),
            self.train_labels.to(device),
            self.test_images.to(device),
            self.test_labels.to(device),
            self.classes,
        )


@dataclass
class TextData:
    """A character-level corpus as token ids (tiny-shakespeare and its synthetic twin)."""

    train: torch.Tensor  # (N,) int64 token ids
    val: torch.Tensor  # (M,) int64 token ids
    vocab: tuple[str, ...]  # id -> character

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> torch.Tensor:
        index = {ch: i for i, ch in enumerate(self.vocab)}
        return torch.tensor([index[ch] for ch in text], dtype=torch.long)

    def decode(self, ids: torch.Tensor) -> str:
        return "".join(self.vocab[i] for i in ids.tolist())

    def to(self, device: torch.device | str) -> TextData:
        return TextData(self.train.to(device), self.val.to(device), self.vocab)
