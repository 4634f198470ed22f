"""Evaluating a self-supervised encoder without fine-tuning it: a kNN monitor and a linear probe.

- Weighted kNN (Wu, Xiong, Yu, Lin 2018, "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination", Section 3.4): each test image takes the k training images with the most similar
  features (cosine), and each neighbour votes for its label with weight exp(similarity / T). Cheap
  enough to run every epoch, it is the monitor used by most SSL codebases (k = 200, T = 0.1).
- Linear probe (SimCLR, Chen et al. 2020, Section 4 "linear evaluation protocol"): multinomial logistic
  regression on frozen features of the un-augmented training images, reported as test accuracy.
  Full-batch L-BFGS from zero weights on a convex objective: no randomness at all, so the result is a
  deterministic function of the features and repeats to the last bit on a CPU.

Both work on features extracted once per evaluation with the encoder in eval mode (BatchNorm uses its
running statistics) from images normalised exactly as in training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..data.augment import normalize


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images: torch.Tensor,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    batch_size: int = 1024,
    channels_last: bool = False,
) -> torch.Tensor:
    """Encoder features of a whole uint8 image set, in chunks of `batch_size`.

    Args:
        encoder: maps (B, 3, H, W) normalised images to (B, D) features; call it in eval mode.
        images: (N, 3, H, W) uint8 on the encoder's device.
        mean, std: the per-channel normalisation used in training.
        batch_size: images per forward pass (memory, not results: eval mode has no batch statistics).
        channels_last: feed NHWC tensors (match the model's memory format on GPU).

    Returns:
        (N, D) float32 features (autocast may run the encoder in bf16; the features are upcast).
    """
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        x = normalize(images[start : start + batch_size], mean, std).contiguous(memory_format=memory_format)
        chunks.append(encoder(x).float())
    return torch.cat(chunks)


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Weighted kNN classification with cosine similarity (Wu et al. 2018).

    Args:
        train_features: (N, D) features of the labelled bank.
        train_labels: (N,) int64 labels in [0, num_classes).
        query_features: (M, D) features to classify.
        num_classes: number of classes C.
        k: neighbours per query (clipped to N).
        temperature: T in the vote weight exp(cos / T); small T trusts the closest neighbours most.
        chunk_size: queries per similarity block; the (chunk, N) matrix bounds the memory.

    Returns:
        (M,) int64 predicted labels.
    """
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    # float32 even under the loop's bf16 autocast: bf16 cosines have 2-3 digits, which reorders neighbours.
    with torch.autocast(train_features.device.type, enabled=False):
        bank = F.normalize(train_features.float(), dim=1)  # (N, D)
        queries = F.normalize(query_features.float(), dim=1)  # (M, D)
        k = min(k, bank.shape[0])
        predictions = []
        for start in range(0, queries.shape[0], chunk_size):
            sims = queries[start : start + chunk_size] @ bank.T  # (chunk, N) cosine similarities
            top_sims, top_index = sims.topk(k, dim=1)  # (chunk, k)
            weights = (top_sims / temperature).exp()  # (chunk, k)
            votes = torch.zeros(sims.shape[0], num_classes, device=sims.device)  # (chunk, C)
            votes.scatter_add_(1, train_labels[top_index], weights)  # each neighbour adds its weight to its class
            predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Fraction of test examples the weighted kNN classifier gets right (see `knn_predict`)."""
    predictions = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
    return (predictions == test_labels).float().mean().item()


def linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    num_classes: int,
    steps: int = 300,
    weight_decay: float = 1e-4,
) -> float:
    """Test accuracy of logistic regression trained on frozen features.

    Features are standardised with the training set's per-dimension mean and std (which makes the
    problem well conditioned for L-BFGS), then W, b start at zero and full-batch L-BFGS with a strong
    Wolfe line search minimises cross-entropy + weight_decay / 2 * ||W||^2 for at most `steps`
    iterations. Runs in float32 with autocast off and gradients on, whatever the caller's context.

    Args:
        train_features: (N, D) features of the training images.
        train_labels: (N,) int64 labels.
        test_features: (M, D) features of the test images.
        test_labels: (M,) int64 labels.
        num_classes: number of classes C.
        steps: maximum L-BFGS iterations.
        weight_decay: L2 penalty on W (not b).

    Returns:
        Test accuracy in [0, 1].
    """
    if steps < 1 or weight_decay < 0:
        raise ValueError(f"steps must be >= 1 and weight_decay >= 0, got steps={steps}, weight_decay={weight_decay}")
    device = train_features.device
    with torch.autocast(device.type, enabled=False), torch.enable_grad():
        train_x, test_x = train_features.float(), test_features.float()
        mean, std = train_x.mean(dim=0), train_x.std(dim=0).clamp_min(1e-6)  # dead features: avoid 0 / 0
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        weight = torch.zeros(train_x.shape[1], num_classes, device=device, requires_grad=True)  # (D, C)
        bias = torch.zeros(num_classes, device=device, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [weight, bias], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe"
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(train_x @ weight + bias, train_labels) + weight_decay / 2 * weight.square().sum()
            loss.backward()
            return loss

        optimizer.step(closure)  # one call runs up to `steps` iterations
        with torch.no_grad():
            predictions = (test_x @ weight + bias).argmax(dim=1)  # (M,)
    return (predictions == test_labels).float().mean().item()
