"""Layers: each written-out version equals PyTorch's kernel, has correct gradients, and keeps its promises."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from {{ cookiecutter.package }}.models.layers import (
    MLP,
    DropPath,
    LayerNorm,
    LearnedPositionalEncoding,
    MultiHeadAttention,
    SinusoidalPositionalEncoding,
    layer_norm,
    scaled_dot_product_attention,
)

TIGHT = {"atol": 1e-5, "rtol": 1e-5}


def qkv(B: int = 2, H: int = 3, L: int = 5, S: int = 5, E: int = 8, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(B, H, n, E, generator=g, dtype=dtype) for n in (L, S, S))


def padding_mask(lengths: list[int], T: int) -> torch.Tensor:
    """(B, T) bool, True = padding: sequence b has lengths[b] real tokens."""
    return torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]


# ---------------------------------------------------------------------------------------------------
# scaled_dot_product_attention
# ---------------------------------------------------------------------------------------------------


def test_attention_by_hand_for_one_query() -> None:
    q = torch.tensor([[1.0, 0.0]])  # (L=1, E=2)
    k = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # (S=2, E=2)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    w = torch.softmax(torch.tensor([1.0, 0.0]) / math.sqrt(2), dim=0)  # scores q.k / sqrt(E)
    expected = w[0] * v[0] + w[1] * v[1]
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v)[0], expected)


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("L,S", [(5, 5), (4, 7)])
def test_explicit_attention_equals_sdpa(is_causal: bool, L: int, S: int) -> None:
    q, k, v = qkv(L=L, S=S)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=is_causal), expected, **TIGHT)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_explicit_attention_equals_sdpa_with_masks(kind: str) -> None:
    q, k, v = qkv(L=4, S=6)
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(2, 1, 4, 6, generator=g) > 0.4
    keep[..., 0] = True  # every query keeps a key, so no row is fully masked
    mask = keep if kind == "bool" else torch.randn(2, 1, 4, 6, generator=g).masked_fill(~keep, float("-inf"))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, attn_mask=mask), expected, **TIGHT)


def test_fully_masked_query_gives_zeros_like_sdpa() -> None:
    q, k, v = qkv(L=3, S=3)
    keep = torch.ones(3, 3, dtype=torch.bool)
    keep[1] = False  # query 1 may attend to nothing
    out = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert torch.isfinite(out).all() and out[:, :, 1].abs().max() == 0
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), **TIGHT)


def test_causal_attention_ignores_the_future() -> None:
    q, k, v = qkv(L=6, S=6)
    changed = v.clone()
    changed[:, :, 4:] += 10.0  # alter the values of positions 4 and 5 only
    before = scaled_dot_product_attention(q, k, v, is_causal=True)
    after = scaled_dot_product_attention(q, k, changed, is_causal=True)
    torch.testing.assert_close(before[:, :, :4], after[:, :, :4])
    assert not torch.allclose(before[:, :, 4:], after[:, :, 4:])


def test_attention_dropout_is_reproducible_and_unbiased() -> None:
    q, k, v = qkv(B=1, H=1, L=4, S=4)
    draw = lambda seed: scaled_dot_product_attention(  # noqa: E731
        q, k, v, dropout_p=0.5, generator=torch.Generator().manual_seed(seed)
    )
    torch.testing.assert_close(draw(3), draw(3))
    assert not torch.allclose(draw(3), draw(4))
    mean = torch.stack([draw(seed) for seed in range(2000)]).mean(0)  # inverted dropout keeps the expectation
    torch.testing.assert_close(mean, scaled_dot_product_attention(q, k, v), atol=0.1, rtol=0.0)


@pytest.mark.parametrize("is_causal", [False, True])
def test_attention_gradcheck(is_causal: bool) -> None:
    q, k, v = (t.requires_grad_() for t in qkv(B=1, H=2, L=3, S=3, E=4, dtype=torch.float64))
    keep = torch.tensor([[True, True, False], [True, False, True], [True, True, True]])
    fn = lambda q, k, v: scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=is_causal)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v))


# ---------------------------------------------------------------------------------------------------
# MultiHeadAttention
# ---------------------------------------------------------------------------------------------------


def reference_mha(ours: MultiHeadAttention, dim: int, num_heads: int) -> nn.MultiheadAttention:
    """nn.MultiheadAttention holding our weights (its in_proj stacks q, k, v rows like our qkv)."""
    ref = nn.MultiheadAttention(dim, num_heads, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.qkv.weight)
        ref.in_proj_bias.copy_(ours.qkv.bias)
        ref.out_proj.weight.copy_(ours.proj.weight)
        ref.out_proj.bias.copy_(ours.proj.bias)
    return ref.eval()


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_mha_equals_nn_multihead_attention(attention: str, causal: bool, padded: bool) -> None:
    torch.manual_seed(0)
    B, T, C, nh = 3, 7, 16, 4
    ours = MultiHeadAttention(C, nh, causal=causal, attention=attention).eval()
    ref = reference_mha(ours, C, nh)
    x = torch.randn(B, T, C)
    pad = padding_mask([7, 5, 2], T) if padded else None
    causal_mask = torch.ones(T, T).triu(1).bool() if causal else None  # nn.MHA: True = blocked
    expected, _ = ref(x, x, x, key_padding_mask=pad, attn_mask=causal_mask, need_weights=False)
    torch.testing.assert_close(ours(x, key_padding_mask=pad), expected, **TIGHT)


def test_mha_paths_agree_in_float64_and_padding_keys_are_ignored() -> None:
    torch.manual_seed(0)
    fast = MultiHeadAttention(12, 3, attention="sdpa").double().eval()
    slow = copy.deepcopy(fast)
    slow.attend = scaled_dot_product_attention
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    pad = padding_mask([6, 4], 6)
    torch.testing.assert_close(fast(x, pad), slow(x, pad), atol=1e-12, rtol=1e-12)
    noisy = x.clone()
    noisy[1, 4:] = 100.0  # padding content must not reach the real positions
    torch.testing.assert_close(fast(noisy, pad)[1, :4], fast(x, pad)[1, :4])


def test_mha_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="attention="):
        MultiHeadAttention(8, 2, attention="flash")


# ---------------------------------------------------------------------------------------------------
# LayerNorm
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("explicit", [False, True])
def test_layer_norm_equals_nn_layer_norm(explicit: bool) -> None:
    torch.manual_seed(0)
    ref = nn.LayerNorm(10)
    nn.init.normal_(ref.weight)
    nn.init.normal_(ref.bias)
    ours = LayerNorm(10, explicit=explicit)
    ours.load_state_dict(ref.state_dict())
    x = 3.0 + 5.0 * torch.randn(4, 7, 10)
    torch.testing.assert_close(ours(x), ref(x), **TIGHT)


def test_layer_norm_output_statistics_and_no_bias() -> None:
    x = 3.0 + 5.0 * torch.randn(64, 32)
    y = layer_norm(x, (32,))
    torch.testing.assert_close(y.mean(-1), torch.zeros(64), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.ones(64), atol=1e-3, rtol=0)
    norm = LayerNorm(32, bias=False)
    assert norm.bias is None and [name for name, _ in norm.named_parameters()] == ["weight"]
    torch.testing.assert_close(norm(x), F.layer_norm(x, (32,)), **TIGHT)


def test_layer_norm_gradcheck() -> None:
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_() for s in ((3, 5), (5,), (5,)))
    assert torch.autograd.gradcheck(lambda x, w, b: layer_norm(x, (5,), w, b), (x, w, b))


# ---------------------------------------------------------------------------------------------------
# Positional encodings, MLP, DropPath
# ---------------------------------------------------------------------------------------------------


def test_sinusoidal_encoding_closed_form() -> None:
    pe = SinusoidalPositionalEncoding(dim=8, max_len=50).pe  # (50, 8)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0] * 4))  # sin(0) = 0, cos(0) = 1
    p, i = 7, 2  # PE(p, 2i) = sin(p / 10000^(2i / C)), PE(p, 2i + 1) = cos(...)
    angle = p / 10000 ** (2 * i / 8)
    torch.testing.assert_close(pe[p, 2 * i], torch.tensor(math.sin(angle)))
    torch.testing.assert_close(pe[p, 2 * i + 1], torch.tensor(math.cos(angle)))
    assert pe.abs().max() <= 1.0
    assert len({tuple(row.tolist()) for row in pe}) == 50  # every position is distinct


def test_sinusoidal_shift_is_a_rotation_independent_of_position() -> None:
    """PE(p + k) = R_k PE(p) with R_k block-diagonal 2x2 rotations: the relative-position property of §3.5."""
    C, k = 16, 5
    pe = SinusoidalPositionalEncoding(C, 64).pe.double()
    inv_freq = torch.exp(torch.arange(0, C, 2, dtype=torch.float64) * (-math.log(10000.0) / C))
    c, s = torch.cos(k * inv_freq), torch.sin(k * inv_freq)
    pairs = pe[:-k].view(-1, C // 2, 2)  # (P, C/2, (sin, cos))
    sin_shift = pairs[..., 0] * c + pairs[..., 1] * s  # sin(a + b) = sin a cos b + cos a sin b
    cos_shift = pairs[..., 1] * c - pairs[..., 0] * s  # cos(a + b) = cos a cos b - sin a sin b
    torch.testing.assert_close(torch.stack([sin_shift, cos_shift], -1).flatten(1), pe[k:], atol=1e-5, rtol=0)


def test_positional_encodings_add_per_position_and_store_what_they_should() -> None:
    x = torch.zeros(2, 5, 8)
    sin, learned = SinusoidalPositionalEncoding(8, 10), LearnedPositionalEncoding(8, 10)
    torch.testing.assert_close(sin(x), sin.pe[:5].expand(2, 5, 8))
    torch.testing.assert_close(learned(x), learned.weight[:5].expand(2, 5, 8))
    assert list(sin.state_dict()) == [] and list(sin.parameters()) == []  # fixed, rebuilt, never saved
    assert [name for name, _ in learned.named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match="even"):
        SinusoidalPositionalEncoding(7, 10)


def test_mlp_is_position_wise() -> None:
    torch.manual_seed(0)
    mlp = MLP(8, 32, activation=nn.ReLU).eval()
    x = torch.randn(2, 5, 8)
    expected = torch.relu(x @ mlp.fc1.weight.T + mlp.fc1.bias) @ mlp.fc2.weight.T + mlp.fc2.bias
    torch.testing.assert_close(mlp(x), expected, **TIGHT)
    torch.testing.assert_close(mlp(x[:, [3, 0]]), mlp(x)[:, [3, 0]])  # no mixing across positions


def test_drop_path_drops_whole_samples_and_is_identity_in_eval() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.5)
    x = torch.ones(1000, 4, 3)
    y = drop(x)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # kept samples scaled by 1 / (1 - p)
    assert (per_sample == per_sample[:, :1]).all()  # one decision per sample
    assert abs(y.mean().item() - 1.0) < 0.1
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError, match="drop path"):
        DropPath(1.0)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_explicit_attention_equals_the_fused_cuda_kernels(dtype: torch.dtype) -> None:
    q, k, v = (t.cuda().to(dtype) for t in qkv(B=4, H=6, L=128, S=128, E=64))
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # flash / memory-efficient kernel
    tol = 5e-2 if dtype == torch.bfloat16 else 1e-3  # bf16 rounding; fp32 matmuls may run as TF32
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True), expected, atol=tol, rtol=tol)
