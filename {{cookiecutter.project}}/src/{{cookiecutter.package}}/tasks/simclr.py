"""Self-supervised contrastive learning with SimCLR (Chen et al. 2020) on CIFAR-10.

A training batch is two augmented views of the same B images, made on the device from the resident
uint8 dataset with the batch's generator (`data.augment`): "strong" is the SimCLR pipeline (resized
crop, flip, colour jitter, grayscale), "weak" only pad-crop and flip (the augmentation ablation). Both
views go through the model in one forward pass of 2B images, so BatchNorm sees them together, DDP sees
one call, and a compiled model one graph; NT-Xent (`models.simclr.NTXentLoss`) compares them.

Labels are never used for training. They are used to measure the representation: a weighted kNN
classifier on encoder features after every epoch ("knn/acc"), and a linear probe once training ends
("probe/acc"), both on un-augmented images (train/simclr_eval.py).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize, random_crop_flip, simclr_augment
from ..data.types import ImageData
from ..models.simclr import NTXentLoss, SimCLR, SimCLRConfig
from ..train.simclr_eval import extract_features, knn_accuracy, linear_probe
from .base import Task

AUGMENTATIONS = ("strong", "weak")


class SimCLRTask(Task):
    """SimCLR pre-training of a ResNet encoder on an `ImageData` set, with kNN and linear-probe evaluation.

    Args:
        config: the model config (architecture, temperature, augmentation, evaluation settings).
        data: uint8 images and int64 labels of the train and test splits; labels only feed evaluation.
        channels_last: build batches in NHWC memory format (set together with `trainer.channels_last`,
            which converts the model; the GPU speed path for convolutions).
        mean, std: per-channel normalisation of pixels in [0, 1]; CIFAR-10's statistics by default (the
            synthetic twin uses them too, so both see the same preprocessing).

    A batch is one (2B, 3, H, W) float tensor: rows [0, B) are the first views, rows [B, 2B) the second
    views of the same images in the same order. Throughput therefore counts views ("images").
    """

    unit = "images"

    def __init__(
        self,
        config: SimCLRConfig,
        data: ImageData,
        channels_last: bool = False,
        mean: tuple[float, ...] = CIFAR10_MEAN,
        std: tuple[float, ...] = CIFAR10_STD,
    ) -> None:
        if config.augmentation not in AUGMENTATIONS:
            raise ValueError(f"model.augmentation={config.augmentation!r} is unknown; expected one of {AUGMENTATIONS}")
        if not 0 < config.crop_scale_min <= 1:
            raise ValueError(f"model.crop_scale_min={config.crop_scale_min} must be in (0, 1]")
        if not 0 <= config.jitter_strength <= 1.25:  # brightness 0.8 s must stay <= 1
            raise ValueError(f"model.jitter_strength={config.jitter_strength} must be in [0, 1.25]")
        if config.knn_k < 1 or config.eval_batch_size < 1:
            raise ValueError(
                f"model.knn_k={config.knn_k} and model.eval_batch_size={config.eval_batch_size} must be positive"
            )
        self.config = config
        self.data = data
        self.num_train = len(data.train_labels)
        self.num_classes = len(data.classes)
        self.channels_last = channels_last
        self.mean, self.std = tuple(mean), tuple(std)
        self.model = SimCLR(config)
        # Gathering is a no-op in a single process; under DDP it makes the negatives the global batch's.
        self.loss_fn = NTXentLoss(config.temperature, gather_distributed=True)

    def to(self, device: torch.device) -> None:
        """Move model and data to `device`; on several GPUs, also switch to global BatchNorm.

        SimCLR aggregates BatchNorm statistics over all devices ("global BN", Section 2 of the paper):
        per-device statistics let the model find its positive pair through them instead of learning
        features. SyncBatchNorm needs CUDA, so CPU (gloo) runs keep per-process statistics.
        """
        if device.type == "cuda" and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(device)
        self.data = self.data.to(device)

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> normalised float32 in the memory format the model expects."""
        x = normalize(images, self.mean, self.std)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def augment(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view of each uint8 image (B, 3, H, W), drawn from `generator`."""
        if self.config.augmentation == "weak":
            return random_crop_flip(images, generator, padding=4)
        return simclr_augment(
            images, generator, scale=(self.config.crop_scale_min, 1.0), jitter_strength=self.config.jitter_strength
        )

    def batch(self, indices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Two views of the images `indices` (B,) -> (2B, 3, H, W): first views, then second views."""
        images = self.data.train_images[indices]  # (B, 3, H, W) uint8
        views = torch.cat([self.augment(images, generator), self.augment(images, generator)])  # (2B, 3, H, W)
        return self._prepare(views)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """NT-Xent of the two views, plus the mean cosine of positive pairs (near 1 with the loss still high
        means the embeddings collapsed together)."""
        z1, z2 = model(batch).chunk(2)  # (B, D) each
        loss = self.loss_fn(z1, z2)
        positive_cos = F.cosine_similarity(z1.detach().float(), z2.detach().float(), dim=1).mean()
        return loss, {"train/positive_cos": positive_cos}

    def _features(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """(N, feature_dim) encoder features of un-augmented uint8 images, in eval mode."""
        encoder = getattr(model, "module", model).encoder  # unwrap DDP if given one
        was_training = model.training
        model.eval()
        features = extract_features(
            encoder, images, self.mean, self.std, self.config.eval_batch_size, channels_last=self.channels_last
        )
        model.train(was_training)
        return features

    def _all_features(self, model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return self._features(model, self.data.train_images), self._features(model, self.data.test_images)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Weighted kNN accuracy on the test split, the training split as the labelled bank."""
        train, test = self._all_features(model)
        accuracy = knn_accuracy(
            train,
            self.data.train_labels,
            test,
            self.data.test_labels,
            self.num_classes,
            k=self.config.knn_k,
            temperature=self.config.knn_temperature,
        )
        return {"knn/acc": accuracy}

    def finish(self, model: nn.Module) -> dict[str, float]:
        """Linear-probe accuracy on frozen features (the final "knn/acc" comes from the last evaluate())."""
        train, test = self._all_features(model)
        accuracy = linear_probe(
            train,
            self.data.train_labels,
            test,
            self.data.test_labels,
            self.num_classes,
            steps=self.config.probe_steps,
            weight_decay=self.config.probe_weight_decay,
        )
        return {"probe/acc": accuracy}

    def example_batch(self, batch_size: int) -> torch.Tensor:
        """The first `batch_size` training images as both views, unaugmented: (2 * batch_size, 3, H, W)."""
        images = self.data.train_images[:batch_size]
        return self._prepare(torch.cat([images, images]))
