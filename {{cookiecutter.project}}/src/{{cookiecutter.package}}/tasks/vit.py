"""Image classification with the Vision Transformer (Dosovitskiy et al. 2021) on CIFAR-10.

Training batches are augmented on the device, the whole batch at once: random 4-pixel translation (pad and
crop back) and horizontal flip (`data.augment.random_crop_flip`), per-channel standardisation with the
CIFAR-10 training-set mean and std, and optionally (`model.mix_prob`) CutMix (Yun et al. 2019) or Mixup
(Zhang et al. 2018) with a partner image, the regularisers DeiT (Touvron et al. 2021) relies on to train
ViTs without extra data. The loss is cross-entropy with `model.label_smoothing` (Szegedy et al. 2016),
weighted between an image's label and its partner's by the share of each in the mixed image.

Evaluation reads the whole test split in fixed-size chunks, without augmentation, and reports plain
cross-entropy ("test/loss") and top-1 accuracy ("test/acc").
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize, random_crop_flip
from ..data.types import ImageData
from ..models.vit import VisionTransformer, ViTConfig
from .base import Task

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # images, labels, partner labels, lam


def cutmix_or_mixup(
    images: torch.Tensor, generator: torch.Generator, prob: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mix each image, with probability `prob`, with its partner: image i with image B - 1 - i (as timm).

    A mixed image gets CutMix or Mixup at even odds, with lam ~ U(0, 1) (Beta(1, 1), the CutMix default):
    Mixup blends lam * own + (1 - lam) * partner; CutMix pastes a partner box of about (1 - lam) of the
    area at a uniform centre, clipped at the border, and lam becomes the exact share the image keeps.

    Args:
        images: (B, C, H, W) float.
        generator: Source of all randomness, on the images' device.
        prob: Probability that an image is mixed at all.

    Returns:
        Mixed images (B, C, H, W), the partner index (B,), and lam (B,): the share of its own image each
        result holds (1 for unmixed images).
    """
    B, _, H, W = images.shape
    device = images.device
    draw, lam, centre_y, centre_x, kind = torch.rand(5, B, generator=generator, device=device)
    lam = torch.where(draw < prob, lam, torch.ones_like(lam))
    # (B,) reversed order, timm's pairing: only the middle image of an odd batch is its own partner (unmixed)
    partner = torch.arange(B - 1, -1, -1, device=device)
    other = images[partner]

    # CutMix: a box of sides sqrt(1 - lam) * (H, W) around the centre, rounded to pixel edges.
    side = torch.sqrt(1 - lam)  # (B,)
    y0, y1 = ((centre_y - side / 2) * H).round().clamp(0, H), ((centre_y + side / 2) * H).round().clamp(0, H)
    x0, x1 = ((centre_x - side / 2) * W).round().clamp(0, W), ((centre_x + side / 2) * W).round().clamp(0, W)
    rows, cols = torch.arange(H, device=device), torch.arange(W, device=device)
    in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])  # (B, H)
    in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])  # (B, W)
    box = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    cutmix = torch.where(box[:, None], other, images)  # (B, C, H, W)

    weight = lam[:, None, None, None]
    mixup = weight * images + (1 - weight) * other
    use_cutmix = kind < 0.5
    mixed = torch.where(use_cutmix[:, None, None, None], cutmix, mixup)
    lam = torch.where(use_cutmix, 1 - box.flatten(1).float().mean(1), lam)
    return mixed, partner, lam


class ImageClassificationTask(Task):
    """Supervised classification of an `ImageData` set with a `VisionTransformer`.

    Args:
        cfg: The model config; `num_classes` is replaced by the data's number of classes and `image_size`
            must match the images.
        data: uint8 images and int64 labels of the train and test splits.
        eval_batch_size: Test images per forward pass in `evaluate()`.

    Batches are `(images, labels, partner_labels, lam)`: (B, 3, H, W) float32 standardised (and maybe
    mixed) images, (B,) int64 labels, the labels of the mixing partners, and (B,) the share of each image's
    own label in its target (all ones without mixing).
    """

    unit = "images"

    def __init__(self, cfg: ViTConfig, data: ImageData, eval_batch_size: int = 1000) -> None:
        size = tuple(data.train_images.shape[-2:])
        if size != (cfg.image_size, cfg.image_size):
            raise ValueError(f"the images are {size[0]}x{size[1]} but model.image_size={cfg.image_size}.")
        if eval_batch_size < 1:
            raise ValueError(f"eval_batch_size={eval_batch_size} must be positive.")
        self.cfg = dataclasses.replace(cfg, num_classes=len(data.classes))
        self.data = data
        self.num_train = len(data.train_labels)
        self.eval_batch_size = eval_batch_size
        self.model = VisionTransformer(self.cfg)

    def to(self, device: torch.device) -> None:
        self.model.to(device)
        self.data = self.data.to(device)

    @staticmethod
    def _standardize(images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float32 (B, 3, H, W), zero mean and unit variance per channel."""
        return normalize(images, CIFAR10_MEAN, CIFAR10_STD)

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> Batch:
        """Images `indices` (B,): translated, flipped, standardised and maybe mixed, with their targets."""
        images = random_crop_flip(self.data.train_images[indices], generator, padding=4)  # (B, 3, H, W) uint8
        images, labels = self._standardize(images), self.data.train_labels[indices]
        if self.cfg.mix_prob == 0:  # no draws at all, so the crops alone decide the batch
            return images, labels, labels, torch.ones(len(labels), device=images.device)
        images, partner, lam = cutmix_or_mixup(images, generator, self.cfg.mix_prob)
        return images, labels, labels[partner], lam

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict]:
        images, labels, partner_labels, lam = batch
        logits = model(images)  # (B, num_classes)
        smoothing = self.cfg.label_smoothing
        own = F.cross_entropy(logits, labels, label_smoothing=smoothing, reduction="none")  # (B,)
        other = F.cross_entropy(logits, partner_labels, label_smoothing=smoothing, reduction="none")
        loss = (lam * own + (1 - lam) * other).mean()
        return loss, {"train/acc": (logits.argmax(-1) == labels).float().mean().detach()}

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Cross-entropy (no smoothing) and accuracy over the whole test split, in eval mode."""
        was_training = model.training
        model.eval()
        device = self.data.test_labels.device
        total_loss = torch.zeros((), device=device, dtype=torch.float64)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for images, labels in zip(
            self.data.test_images.split(self.eval_batch_size),
            self.data.test_labels.split(self.eval_batch_size),
            strict=True,
        ):
            logits = model(self._standardize(images)).float()  # (b, num_classes)
            total_loss += F.cross_entropy(logits, labels, reduction="sum")
            correct += (logits.argmax(-1) == labels).sum()
        model.train(was_training)
        count = len(self.data.test_labels)
        return {"test/loss": total_loss.item() / count, "test/acc": correct.item() / count}

    def example_batch(self, batch_size: int) -> Batch:
        """The first `batch_size` training images, unaugmented and unmixed."""
        labels = self.data.train_labels[:batch_size]
        images = self._standardize(self.data.train_images[:batch_size])
        return images, labels, labels, torch.ones(len(labels), device=images.device)
