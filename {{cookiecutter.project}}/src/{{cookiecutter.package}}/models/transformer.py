"""The Transformer (Vaswani et al. 2017, "Attention Is All You Need"), encoder-only, with ablation switches.

Built bottom-up like nanoGPT (Karpathy 2022): layers.py -> `Block` -> `Transformer`. One class covers
- the decoder-only character language model (pre-LN as in GPT-2, causal; the default config is nanoGPT's
  shakespeare-char recipe: 6 layers, 6 heads, 384 wide, context 256, dropout 0.2), and
- the classic encoder (`transformer_base()`: post-LN, bidirectional, sinusoidal positions, ReLU,
  512 wide, 8 heads, d_ff 2048, 6 layers, dropout 0.1).

Ablations are config values, each removing one ingredient: `attention="none"` (no token mixing),
`residual=False` (no skip connections), `positional="none"`, `dropout=0.0`, `norm_first=False` (post-LN,
Xiong et al. 2020 "On Layer Normalization in the Transformer Architecture").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .layers import MLP, LayerNorm, LearnedPositionalEncoding, MultiHeadAttention, SinusoidalPositionalEncoding

ATTENTION = ("sdpa", "explicit", "none")
POSITIONAL = ("learned", "sinusoidal", "none")
ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


@dataclass
class TransformerConfig:
    """Transformer hyperparameters; the defaults are nanoGPT's shakespeare-char model (10.7M parameters)."""

    name: str = "transformer"
    vocab_size: int = 65  # tiny-shakespeare's characters; the task sets it from the data
    block_size: int = 256  # context length in tokens; the task cuts training windows of this length
    d_model: int = 384  # residual stream width C
    num_heads: int = 6  # head_dim = d_model / num_heads = 64
    num_layers: int = 6
    d_ff: int = 1536  # MLP hidden width, 4 * d_model as in GPT
    dropout: float = 0.2  # 1M characters overfit quickly; 0.0 is the "no dropout" ablation
    bias: bool = False  # bias in Linear and LayerNorm: nanoGPT finds none a bit better and faster
    norm_first: bool = True  # pre-LN (GPT-2) trains without careful warmup; False = post-LN (Vaswani et al.)
    causal: bool = True  # position t sees only positions <= t: required for next-token prediction
    attention: str = "sdpa"  # sdpa (fused kernel) | explicit (written out, same math) | none (ablation)
    residual: bool = True  # False removes every skip connection (ablation)
    positional: str = "learned"  # learned | sinusoidal | none (ablation)
    activation: str = "gelu"  # gelu (GPT) | relu (the original Transformer)
    tie_weights: bool = True  # output head shares the token embedding (Press & Wolf 2017)

    def __post_init__(self) -> None:
        for key in ("vocab_size", "block_size", "d_model", "num_heads", "num_layers", "d_ff"):
            if getattr(self, key) < 1:
                raise ValueError(f"model.{key}={getattr(self, key)} must be a positive integer.")
        if self.d_model % self.num_heads != 0:
            raise ValueError(f"model.d_model={self.d_model} must be divisible by model.num_heads={self.num_heads}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout={self.dropout} must be in [0, 1).")
        if self.attention not in ATTENTION:
            raise ValueError(f"model.attention={self.attention!r} is not one of {ATTENTION}.")
        if self.positional not in POSITIONAL:
            raise ValueError(f"model.positional={self.positional!r} is not one of {POSITIONAL}.")
        if self.positional == "sinusoidal" and self.d_model % 2 != 0:
            raise ValueError(f"model.d_model={self.d_model} must be even for sinusoidal positions.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={self.activation!r} is not one of {tuple(ACTIVATIONS)}.")


def transformer_base(**overrides: object) -> TransformerConfig:
    """The base encoder of Vaswani et al. 2017 (Table 3): 6 post-LN layers, 512 wide, 8 heads, d_ff 2048."""
    base = dict(
        block_size=512,
        d_model=512,
        num_heads=8,
        num_layers=6,
        d_ff=2048,
        dropout=0.1,
        bias=True,
        norm_first=False,
        causal=False,
        positional="sinusoidal",
        activation="relu",
    )
    return TransformerConfig(**{**base, **overrides})


class Block(nn.Module):
    """One layer: a self-attention sublayer, then a position-wise MLP sublayer, each with norm and residual."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.norm_first = cfg.norm_first
        self.residual = cfg.residual
        has_attention = cfg.attention != "none"
        self.norm1 = LayerNorm(cfg.d_model, bias=cfg.bias) if has_attention else None
        self.attn = (
            MultiHeadAttention(cfg.d_model, cfg.num_heads, cfg.dropout, cfg.bias, cfg.causal, cfg.attention)
            if has_attention
            else None
        )
        self.norm2 = LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg.d_model, cfg.d_ff, cfg.dropout, ACTIVATIONS[cfg.activation], cfg.bias)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, C) -> (B, T, C); `key_padding_mask` (B, T) bool marks padding with True."""
        if self.attn is not None:  # the "no attention" ablation drops the whole sublayer
            x = self._sublayer(x, self.norm1, lambda h: self.attn(h, key_padding_mask))
        return self._sublayer(x, self.norm2, self.mlp)

    def _sublayer(self, x: torch.Tensor, norm: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        if self.norm_first:  # pre-LN: x + fn(norm(x)); the residual stream itself is never normalized
            y = fn(norm(x))
            return x + y if self.residual else y
        return norm(x + fn(x) if self.residual else fn(x))  # post-LN: norm(x + fn(x)), as in the paper


class Transformer(nn.Module):
    """Token ids -> logits over the vocabulary: embed, add positions, `num_layers` blocks, (final norm), head.

    Args:
        cfg: Hyperparameters; see `TransformerConfig`.
    """

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        positional = {
            "learned": lambda: LearnedPositionalEncoding(cfg.d_model, cfg.block_size),
            "sinusoidal": lambda: SinusoidalPositionalEncoding(cfg.d_model, cfg.block_size),
            "none": nn.Identity,
        }
        self.pos_emb = positional[cfg.positional]()
        # Sinusoids have unit size: Vaswani et al. (§3.4) multiply the embeddings by sqrt(C) to match them.
        self.embed_scale = math.sqrt(cfg.d_model) if cfg.positional == "sinusoidal" else 1.0
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        # Pre-LN leaves the residual stream unnormalized, so GPT-2 adds a last norm; post-LN output is normalized.
        self.norm = LayerNorm(cfg.d_model, bias=cfg.bias) if cfg.norm_first else nn.Identity()
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: scale the init of projections into the residual stream by 1/sqrt(2 * num_layers), so the
        # stream's variance doesn't grow with depth.
        for name, param in self.named_parameters():
            if name.endswith(("attn.proj.weight", "mlp.fc2.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * cfg.num_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward_features(self, idx: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder: token ids (B, T) -> contextual features (B, T, C).

        Args:
            idx: (B, T) int64 token ids, T <= block_size.
            key_padding_mask: Optional (B, T) bool, True = padding (ignored as a key by every position).
        """
        if idx.size(1) > self.cfg.block_size:
            raise ValueError(f"sequence length {idx.size(1)} exceeds model.block_size={self.cfg.block_size}.")
        x = self.tok_emb(idx) * self.embed_scale  # (B, T, C)
        x = self.drop(self.pos_emb(x))
        for block in self.blocks:
            x = block(x, key_padding_mask)
        return self.norm(x)

    def forward(self, idx: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, vocab_size); with `causal`, logits[:, t] predict idx[:, t + 1]."""
        return self.head(self.forward_features(idx, key_padding_mask))

    def no_weight_decay(self) -> set[str]:
        """Parameter names AdamW must not decay besides biases and norms: the learned position table (as timm)."""
        return {"pos_emb.weight"} if isinstance(self.pos_emb, LearnedPositionalEncoding) else set()

    def num_parameters(self) -> int:
        """Trainable parameters, counting tied weights once."""
        return sum(p.numel() for p in self.parameters())
