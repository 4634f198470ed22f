"""Transformer building blocks, each written out once for reading and once as the fast path used in training.

- Scaled dot-product and multi-head attention: Vaswani et al. 2017, "Attention Is All You Need", §3.2.
- Layer normalization: Ba, Kiros and Hinton 2016, "Layer Normalization".
- Sinusoidal positional encoding: Vaswani et al. 2017, §3.5; learned positions as in GPT and ViT.
- Stochastic depth (DropPath): Huang et al. 2016, "Deep Networks with Stochastic Depth".

The explicit versions (`scaled_dot_product_attention`, `layer_norm`) are what a reader learns from; the
tests check that they equal PyTorch's fused kernels (`F.scaled_dot_product_attention`, `F.layer_norm`),
which the models use by default. A module picks its path once, in `__init__`, so `forward` has no branch
on it. Switched-off options are `nn.Identity` for the same reason (the timm habit).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

ATTENTION_KINDS = ("sdpa", "explicit")


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) v, step by step; same semantics as `F.scaled_dot_product_attention`.

    Args:
        q: Queries (..., L, E).
        k: Keys (..., S, E).
        v: Values (..., S, Ev).
        attn_mask: Broadcastable to (..., L, S). Bool: True = may attend (F.sdpa's convention, the opposite
            of nn.MultiheadAttention's masks). Float: added to the scores (use -inf to block).
        dropout_p: Probability of zeroing an attention weight (pass 0.0 in eval mode).
        is_causal: Query i attends to keys 0..i only (top-left aligned, as in F.sdpa). May be combined
            with `attn_mask` here; F.sdpa rejects that combination.
        generator: Source of the dropout mask, for reproducible dropout.

    Returns:
        (..., L, Ev). A query whose keys are all masked gets zeros, as F.sdpa returns (not NaN).
    """
    L, S = q.size(-2), k.size(-2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (..., L, E) x (..., E, S) -> (..., L, S)
    keep = torch.ones(L, S, dtype=torch.bool, device=q.device)  # True = may attend
    if is_causal:
        keep = keep.tril()
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        keep = keep & attn_mask
    elif attn_mask is not None:
        scores = scores + attn_mask
    scores = scores.masked_fill(~keep, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., L, S), each row sums to 1
    # A row with every key masked is softmax(-inf, ..., -inf) = NaN; it attends to nothing instead.
    weights = weights.masked_fill(~keep.any(dim=-1, keepdim=True), 0.0)
    if dropout_p > 0.0:
        drop = torch.rand(weights.shape, generator=generator, device=weights.device) < dropout_p
        weights = weights.masked_fill(drop, 0.0) / (1.0 - dropout_p)  # inverted dropout keeps the mean
    return weights @ v  # (..., L, S) x (..., S, Ev) -> (..., L, Ev)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with one fused `qkv` projection (Vaswani et al. 2017, §3.2.2).

    Args:
        dim: Model width C; split into `num_heads` heads of `C // num_heads` channels.
        num_heads: Number of attention heads.
        dropout: Dropout on the attention weights and on the output projection (training only).
        bias: Bias in the `qkv` and `proj` linear layers.
        causal: Each position attends only to itself and earlier positions (decoder / language model).
        attention: "sdpa" uses PyTorch's fused kernel (flash / memory-efficient on GPU, used in training);
            "explicit" uses the written-out `scaled_dot_product_attention` above. Same function, same weights.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} must be divisible by num_heads={num_heads}.")
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention={attention!r} is not one of {ATTENTION_KINDS}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.causal = causal
        self.attend: Callable[..., torch.Tensor] = (
            F.scaled_dot_product_attention if attention == "sdpa" else scaled_dot_product_attention
        )
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)  # rows: all of q, then k, then v (as nn.MultiheadAttention)
        self.proj = nn.Linear(dim, dim, bias=bias)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend over the sequence.

        Args:
            x: (B, T, C).
            key_padding_mask: Optional (B, T) bool, True = padding: no query attends to that key
                (nn.MultiheadAttention's convention).

        Returns:
            (B, T, C).
        """
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim)  # (B, T, 3, nh, hs)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, nh, T, hs)
        mask, is_causal = None, self.causal
        if key_padding_mask is not None:
            mask = ~key_padding_mask[:, None, None, :]  # (B, 1, 1, T), True = may attend
            if is_causal:  # F.sdpa takes a mask or is_causal, not both: fold the causal part into the mask
                mask = mask & torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (B, 1, T, T)
                is_causal = False
        dropout_p = self.dropout if self.training else 0.0
        y = self.attend(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C): concatenate the heads
        return self.proj_drop(self.proj(y))


def layer_norm(
    x: torch.Tensor,
    normalized_shape: tuple[int, ...] | torch.Size,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dims, written out (same signature as F.layer_norm).

    Args:
        x: (..., *normalized_shape).
        normalized_shape: The trailing dims to normalize over, e.g. (C,).
        weight: Per-feature gain, shape `normalized_shape` (None = 1).
        bias: Per-feature shift, shape `normalized_shape` (None = 0).
        eps: Added to the variance so constant inputs don't divide by zero.

    Returns:
        Same shape as `x`.
    """
    dims = tuple(range(-len(normalized_shape), 0))
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)  # biased (divide by n), as Ba et al. and F.layer_norm
    y = (x - mean) / torch.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


class LayerNorm(nn.Module):
    """Layer normalization over the last dim, with an optional bias (nanoGPT: no bias is a bit better).

    Args:
        dim: Feature size C.
        eps: Variance epsilon (PyTorch's default).
        bias: Learn a shift as well as a gain.
        explicit: Use the written-out `layer_norm` instead of `F.layer_norm` (same result, slower).
    """

    def __init__(self, dim: int, eps: float = 1e-5, bias: bool = True, explicit: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if bias else None
        self.normalize: Callable[..., torch.Tensor] = layer_norm if explicit else F.layer_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        return self.normalize(x, self.weight.shape, self.weight, self.bias, self.eps)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds PE(p, 2i) = sin(p / 10000^(2i/C)), PE(p, 2i+1) = cos(p / 10000^(2i/C)) (Vaswani et al. 2017, §3.5).

    Fixed, not learned: PE(p + k) is a rotation of PE(p) that depends only on k, which the paper argues
    lets attention pick up relative positions. The table is a non-persistent buffer (rebuilt, not saved).

    Args:
        dim: Feature size C (even: the channels come in sin/cos pairs).
        max_len: Longest sequence the table covers.
    """

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        if dim % 2 != 0:
            raise ValueError(f"dim={dim} must be even for sinusoidal positional encoding (sin/cos pairs).")
        position = torch.arange(max_len, dtype=torch.float32)[:, None]  # (max_len, 1)
        inv_freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (C/2,)
        angle = position * inv_freq  # (max_len, 1) * (C/2,) -> (max_len, C/2)
        pe = torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)  # (max_len, C/2, 2) -> (max_len, C)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), with T <= max_len."""
        return x + self.pe[: x.size(1)]


class LearnedPositionalEncoding(nn.Module):
    """Adds a learned vector per position (GPT-2, BERT, ViT); initialised N(0, 0.02^2) as in GPT-2.

    Args:
        dim: Feature size C.
        max_len: Number of positions (the context length, or the tokens of a ViT).
    """

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)  # (max_len, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), with T <= max_len."""
        return x + self.weight[: x.size(1)]


class MLP(nn.Module):
    """Position-wise feed-forward network: Linear -> activation -> Linear -> dropout (Vaswani et al. 2017, §3.3).

    Args:
        dim: Input and output width C.
        hidden: Hidden width (4 C in GPT and ViT-B, 2048 for C = 512 in the original Transformer).
        dropout: Dropout on the output (training only).
        activation: Module class of the non-linearity (GELU in GPT/ViT, ReLU in the original).
        bias: Bias in both linear layers.
    """

    def __init__(
        self,
        dim: int,
        hidden: int,
        dropout: float = 0.0,
        activation: type[nn.Module] = nn.GELU,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden, bias=bias)
        self.act = activation()
        self.fc2 = nn.Linear(hidden, dim, bias=bias)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., C)."""
        return self.drop(self.fc2(self.act(self.fc1(x))))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a residual branch for a whole sample with probability p.

    Kept branches are scaled by 1 / (1 - p) so the expected output is unchanged; in eval mode this is the
    identity. Use `nn.Identity()` instead for p = 0.

    Args:
        p: Probability of dropping the branch for a sample, in [0, 1).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability p={p} must be in [0, 1).")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (B, ...)."""
        if not self.training:
            return x
        shape = (x.size(0),) + (1,) * (x.dim() - 1)  # (B, 1, ..., 1): one decision per sample
        keep = torch.rand(shape, dtype=x.dtype, device=x.device) >= self.p
        return x * keep / (1.0 - self.p)
