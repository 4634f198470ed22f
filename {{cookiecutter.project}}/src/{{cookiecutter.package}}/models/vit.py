"""Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words"), with ablation switches.

An image is cut into non-overlapping P x P patches (one strided convolution), each patch becomes a token,
a class token is prepended (or the tokens are averaged at the end), learned position embeddings are added,
and pre-LN Transformer blocks (layers.py) mix the tokens. The model runs in timm's stages:
`forward_features` (tokens) -> `pool` (one vector per image) -> `forward_head` (logits).

Named variants set only what differs from `ViTConfig`:
- the default config is the 6.3M-parameter CIFAR-10 ViT of omihub777/ViT-CIFAR (32 px, patch 4, width 384,
  depth 7, 12 heads, MLP hidden 384), reported at 90.9 % test accuracy from scratch;
- `vit_b16()` is ViT-B/16 of the paper (224 px, patch 16, width 768, depth 12, 12 heads, 86.6M parameters).

Ablations: `pos_embedding=False` (no position information: the blocks are permutation-equivariant),
`pool="gap"` (average the patch tokens instead of a class token), `patch_size` (tokens per image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import ATTENTION_KINDS, MLP, DropPath, LayerNorm, LearnedPositionalEncoding, MultiHeadAttention

POOLS = ("cls", "gap")


@dataclass
class ViTConfig:
    """ViT hyperparameters; the defaults are the CIFAR-10 model (6.3M parameters, 64 patch tokens)."""

    name: str = "vit"
    image_size: int = 32  # CIFAR-10; images must be image_size x image_size
    patch_size: int = 4  # 32 / 4 = 8 x 8 = 64 tokens; 16 px patches would leave only 4 tokens
    in_channels: int = 3
    num_classes: int = 10
    dim: int = 384  # token width C
    depth: int = 7  # number of blocks
    num_heads: int = 12  # head_dim = 32
    mlp_ratio: float = 1.0  # MLP hidden = mlp_ratio * dim; 1.0 in the 6.3M CIFAR model, 4.0 in ViT-B
    dropout: float = 0.0  # on attention weights, projections and embeddings; ViT-B/16 uses 0.1 on ImageNet
    drop_path: float = 0.1  # stochastic depth of the last block (linear from 0 in the first), as in DeiT
    pool: str = "cls"  # cls: class token (the paper) | gap: mean of the patch tokens (ablation)
    pos_embedding: bool = True  # learned 1-D position embedding; False is the ablation
    attention: str = "sdpa"  # sdpa (fused kernel) | explicit (written out, same math)
    # Training-objective knobs, read by tasks/vit.py (the model group holds the whole baseline's settings):
    label_smoothing: float = 0.1  # soft targets (Szegedy et al. 2016): hard ones overfit small data
    mix_prob: float = 0.0  # chance that a training image is mixed with a partner by CutMix or Mixup (DeiT)

    def __post_init__(self) -> None:
        for key in ("image_size", "patch_size", "in_channels", "num_classes", "dim", "depth", "num_heads"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key}={getattr(self, key)} must be a positive integer.")
        if self.image_size % self.patch_size != 0:
            raise ValueError(f"model.image_size={self.image_size} must be divisible by patch_size={self.patch_size}.")
        if self.dim % self.num_heads != 0:
            raise ValueError(f"model.dim={self.dim} must be divisible by model.num_heads={self.num_heads}.")
        if self.mlp_ratio <= 0:
            raise ValueError(f"model.mlp_ratio={self.mlp_ratio} must be positive.")
        for key in ("dropout", "drop_path", "label_smoothing"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ValueError(f"model.{key}={getattr(self, key)} must be in [0, 1).")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ValueError(f"model.mix_prob={self.mix_prob} must be a probability in [0, 1].")
        if self.pool not in POOLS:
            raise ValueError(f"model.pool={self.pool!r} is not one of {POOLS}.")
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"model.attention={self.attention!r} is not one of {ATTENTION_KINDS}.")


def vit_b16(**overrides: object) -> ViTConfig:
    """ViT-B/16 (Dosovitskiy et al. 2021, Table 1) for 224 px ImageNet: 86.6M parameters."""
    base = dict(
        image_size=224,
        patch_size=16,
        num_classes=1000,
        dim=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4.0,
        dropout=0.1,
        drop_path=0.0,
    )
    return ViTConfig(**{**base, **overrides})


class PatchEmbed(nn.Module):
    """Non-overlapping P x P patches -> tokens, as one Conv2d with kernel = stride = P (a shared linear map)."""

    def __init__(self, patch_size: int, in_channels: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, N, C) with N = (H / P) * (W / P), patches in row-major order."""
        x = self.proj(x)  # (B, C, H/P, W/P)
        return x.flatten(2).transpose(1, 2)  # (B, C, N) -> (B, N, C)


class Block(nn.Module):
    """Pre-LN Transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)), each branch under DropPath."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, dropout: float, drop_path: float, attention: str
    ) -> None:
        super().__init__()
        self.norm1 = LayerNorm(dim, eps=1e-6)  # 1e-6 as in the original (JAX) ViT and timm
        self.attn = MultiHeadAttention(dim, num_heads, dropout, bias=True, attention=attention)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dropout)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, N, C)."""
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Images (B, 3, H, W) -> class logits (B, num_classes).

    Parameter names follow timm's `VisionTransformer` (patch_embed.proj, cls_token, blocks.i.attn.qkv, ...;
    only the position table is `pos_embed.weight` of shape (N, C) instead of timm's (1, N, C)).

    Args:
        cfg: Hyperparameters; see `ViTConfig`.
    """

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_patches = (cfg.image_size // cfg.patch_size) ** 2
        self.patch_embed = PatchEmbed(cfg.patch_size, cfg.in_channels, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim)) if cfg.pool == "cls" else None
        num_tokens = self.num_patches + (cfg.pool == "cls")
        self.pos_embed = LearnedPositionalEncoding(cfg.dim, num_tokens) if cfg.pos_embedding else nn.Identity()
        self.pos_drop = nn.Dropout(cfg.dropout)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist()  # deeper blocks are dropped more often
        self.blocks = nn.Sequential(
            *(Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, cfg.dropout, rate, cfg.attention) for rate in rates)
        )
        self.norm = LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        self.apply(self._init_weights)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):  # timm's default ViT init; the patch conv keeps PyTorch's
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 3, H, W) -> token features (B, N(+1), C), class token first if any."""
        x = self.patch_embed(images)  # (B, N, C)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)  # (B, 1 + N, C)
        x = self.pos_drop(self.pos_embed(x))
        return self.norm(self.blocks(x))

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """Token features (B, N(+1), C) -> one vector per image (B, C): the class token, or the token mean."""
        return x[:, 0] if self.cls_token is not None else x.mean(dim=1)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features (B, C) -> logits (B, num_classes)."""
        return self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 3, H, W) -> logits (B, num_classes)."""
        return self.forward_head(self.pool(self.forward_features(images)))

    def no_weight_decay(self) -> set[str]:
        """Parameter names AdamW must not decay besides biases and norms (timm: the class token, positions)."""
        names = {"cls_token", "pos_embed.weight"}
        return {name for name, _ in self.named_parameters() if name in names}

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters())
