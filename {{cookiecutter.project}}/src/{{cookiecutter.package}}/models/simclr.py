"""SimCLR: a CIFAR ResNet-18 encoder, an MLP projection head and the NT-Xent contrastive loss.

Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of Visual Representations"
(ICML 2020). Two augmented views of each image go through the encoder f and the projection head g; the
NT-Xent loss pulls the two projections of an image together and pushes them away from the projections
of every other image in the batch. After training, g is thrown away and the encoder features h = f(x)
are evaluated (kNN monitor, linear probe: train/simclr_eval.py).

The encoder is the CIFAR variant of ResNet-18 (He et al. 2016, "Deep Residual Learning"; SimCLR
Appendix B.9): a 3x3 stride-1 stem and no max-pool, because 32 x 32 inputs cannot afford the ImageNet
stem's 4x downsampling. NT-Xent exists twice: `NTXentLoss` (one matmul, used for training) and
`nt_xent_naive` (a loop over anchors, the definition as written in the paper; tests check they agree).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@dataclass
class SimCLRConfig:
    """Model, loss and evaluation settings of the SimCLR baseline (configs/model/simclr.yaml)."""

    name: str = "simclr"
    width: int = 64  # channels of the first stage; stages have width x (1, 2, 4, 8): ResNet-18 at 64
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # BasicBlocks per stage: ResNet-18
    projection_head: bool = True  # ablation: False computes the loss on the encoder features directly
    projection_hidden_dim: int = 512  # the paper's MLP keeps the feature width in its hidden layer
    projection_dim: int = 128  # output of g; the paper finds 128 as good as 2048 (Figure 8)
    temperature: float = 0.5  # NT-Xent tau; 0.5 is best for CIFAR-10 in the paper's Appendix B.9
    augmentation: str = "strong"  # strong: SimCLR crop + jitter + grayscale | weak: pad-crop + flip only
    crop_scale_min: float = 0.08  # smallest crop area fraction (the paper's 0.08; 0.2 is gentler)
    jitter_strength: float = 0.5  # colour distortion strength s; 0.5 for CIFAR-10 (Appendix B.9)
    knn_k: int = 200  # neighbours that vote in the kNN monitor (Wu et al. 2018)
    knn_temperature: float = 0.1  # vote weight exp(cos / T), as in Wu et al. 2018
    probe_steps: int = 300  # L-BFGS iterations of the final linear probe (a convex problem: converges)
    probe_weight_decay: float = 1e-4  # L2 penalty of the probe; a little keeps the optimum finite
    eval_batch_size: int = 1024  # images per forward pass when extracting features for evaluation

    @property
    def feature_dim(self) -> int:
        """Width of the encoder output h: 8 x width (512 for ResNet-18)."""
        return 8 * self.width


# ---------------------------------------------------------------------------------------------------
# Encoder: CIFAR ResNet-18
# ---------------------------------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (He et al. 2016, Figure 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:  # projection shortcut ("option B" of the paper)
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: 3x3 stem, four stages of BasicBlocks, global average pooling, no classifier.

    Args:
        width: channels of the first stage; stage i has width * 2**i channels.
        blocks: BasicBlocks per stage; stages after the first halve the resolution.
    """

    def __init__(self, width: int = 64, blocks: list[int] | tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        if width < 1 or len(blocks) == 0 or min(blocks) < 1:
            raise ValueError(f"width must be >= 1 and blocks a non-empty list of positive ints, got {width}, {blocks}")
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        stages, channels = [], width
        for i, num_blocks in enumerate(blocks):
            out_channels = width * 2**i
            stride = 1 if i == 0 else 2
            layers = [BasicBlock(channels, out_channels, stride)]
            layers += [BasicBlock(out_channels, out_channels) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*layers))
            channels = out_channels
        self.stages = nn.Sequential(*stages)
        self.out_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # torchvision's ResNet initialisation
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, out_dim) features."""
        x = self.stages(self.stem(x))  # (B, out_dim, H / 2**(stages-1), W / 2**(stages-1))
        # Global average pool as a mean: AdaptiveAvgPool2d's CUDA backward has no deterministic kernel.
        return x.mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------------
# Projection head and model
# ---------------------------------------------------------------------------------------------------


class ProjectionHead(nn.Sequential):
    """g(h) = W2 ReLU(BN(W1 h)): the paper's one-hidden-layer MLP (Section 2.1), with BN as in its code."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=False),  # BN follows: a bias would be cancelled
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, out_dim),
        )


class SimCLR(nn.Module):
    """Encoder f plus projection head g; `forward` returns z = g(f(x)), `features` returns h = f(x).

    With `projection_head=False` the head is an `nn.Identity`, so the loss sees h itself (the paper's
    "no projection" ablation, Figure 8) and `forward` has no branch.
    """

    def __init__(self, config: SimCLRConfig) -> None:
        super().__init__()
        self.encoder = ResNet(config.width, config.blocks)
        self.head: nn.Module = nn.Identity()
        if config.projection_head:
            self.head = ProjectionHead(self.encoder.out_dim, config.projection_hidden_dim, config.projection_dim)
        self.out_dim = config.projection_dim if config.projection_head else self.encoder.out_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, feature_dim): the representation that is evaluated."""
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_dim): the embedding the contrastive loss compares."""
        return self.head(self.encoder(x))


# ---------------------------------------------------------------------------------------------------
# NT-Xent loss
# ---------------------------------------------------------------------------------------------------


def nt_xent_naive(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent written as in the paper (Algorithm 1): a loop over all 2N anchors.

    For anchor i with positive j, l(i, j) = -log( exp(s_ij / t) / sum_{k != i} exp(s_ik / t) ), where s
    is cosine similarity; the loss averages l over both views of every image. Slow, for tests and reading.

    Args:
        z1, z2: (N, D) embeddings of the two views; row n of z1 and row n of z2 are a positive pair.
        temperature: t > 0.

    Returns:
        Scalar loss.
    """
    z = torch.cat([z1, z2])  # (2N, D)
    n = z1.shape[0]
    losses = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        sims = torch.stack([F.cosine_similarity(z[i], z[k], dim=0) for k in range(2 * n)]) / temperature
        others = torch.cat([sims[:i], sims[i + 1 :]])  # every k != i, the positive included
        losses.append(torch.logsumexp(others, dim=0) - sims[positive])
    return torch.stack(losses).mean()


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy loss (NT-Xent) of SimCLR.

    Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations", eq. (1);
    the same loss as InfoNCE (van den Oord et al. 2018) with cosine similarity and in-batch negatives.
    Each of the 2N embeddings is an anchor whose positive is the other view of its image and whose
    negatives are the remaining 2N - 2 embeddings.

    Computed in (at least) float32 with autocast off: the logits are cosines / t, and bf16 would round
    them to about two decimal digits. Under DDP with `gather_distributed=True` every rank compares its anchors
    with the embeddings of all ranks (a differentiable all-gather), so the negatives, and the loss, are
    those of the global batch whatever the number of processes.

    Example:
        >>> loss_fn = NTXentLoss(temperature=0.5)
        >>> z = model(torch.cat([view1, view2]))  # (2N, D): one forward for both views
        >>> loss = loss_fn(*z.chunk(2))
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False) -> None:
        super().__init__()
        if not temperature > 1e-8:
            raise ValueError(f"temperature must be > 1e-8 (it divides the similarities), got {temperature}")
        self.temperature = temperature
        self.gather_distributed = gather_distributed

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Mean NT-Xent over both views.

        Args:
            z1, z2: (N, D) embeddings of the two views of the same N images, in the same order.

        Returns:
            Scalar loss.
        """
        if z1.shape != z2.shape or z1.dim() != 2:
            raise ValueError(f"expected two (N, D) embeddings of equal shape, got {tuple(z1.shape)}, {tuple(z2.shape)}")
        n = z1.shape[0]
        with torch.autocast(z1.device.type, enabled=False):
            dtype = torch.promote_types(z1.dtype, torch.float32)  # bf16 -> float32; float64 stays (gradcheck)
            z1, z2 = F.normalize(z1.to(dtype), dim=1), F.normalize(z2.to(dtype), dim=1)
            rank, world = 0, 1
            all1, all2 = z1, z2
            if self.gather_distributed and dist.is_available() and dist.is_initialized():
                from torch.distributed.nn.functional import all_gather  # differentiable, unlike dist.all_gather

                rank, world = dist.get_rank(), dist.get_world_size()
                all1, all2 = torch.cat(all_gather(z1)), torch.cat(all_gather(z2))  # (world N, D)
            anchors = torch.cat([z1, z2])  # (2N, D)
            candidates = torch.cat([all1, all2])  # (2M, D), M = world * N
            logits = anchors @ candidates.T / self.temperature  # (2N, 2M)
            m = world * n
            own = rank * n + torch.arange(n, device=z1.device)  # this rank's images among the M
            self_index = torch.cat([own, own + m])  # (2N,) where each anchor meets itself
            positive = torch.cat([own + m, own])  # (2N,) the other view of the same image
            is_self = self_index[:, None] == torch.arange(2 * m, device=z1.device)  # (2N, 2M)
            logits = logits.masked_fill(is_self, float("-inf"))  # never its own negative: exp(-inf) = 0
            return F.cross_entropy(logits, positive)
