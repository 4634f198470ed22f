"""Transformer: parameter counts in closed form, equality with nn.TransformerEncoder, causality, ablations."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from {{ cookiecutter.package }}.models.transformer import Transformer, TransformerConfig, transformer_base

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny(**overrides) -> TransformerConfig:
    base = dict(vocab_size=11, block_size=16, d_model=32, num_heads=4, num_layers=2, d_ff=64, dropout=0.0)
    return TransformerConfig(**{**base, **overrides})


def expected_parameters(cfg: TransformerConfig) -> int:
    """Closed-form count: embeddings + per layer (attention, MLP, norms) + final norm + untied head."""
    d, b = cfg.d_model, int(cfg.bias)
    norm = d + b * d
    attention = (4 * d * d + b * 4 * d + norm) if cfg.attention != "none" else 0
    mlp = 2 * d * cfg.d_ff + b * (cfg.d_ff + d) + norm
    positions = cfg.block_size * d if cfg.positional == "learned" else 0
    final_norm = norm if cfg.norm_first else 0
    head = 0 if cfg.tie_weights else cfg.vocab_size * d
    return cfg.vocab_size * d + positions + cfg.num_layers * (attention + mlp) + final_norm + head


def tokens(cfg: TransformerConfig, B: int = 2, T: int | None = None, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab_size, (B, T or cfg.block_size), generator=g)


def test_default_is_nanogpt_shakespeare_char_size() -> None:
    model = Transformer(TransformerConfig())
    assert model.num_parameters() == 10_745_088  # nanoGPT reports 10.65M: it leaves out the 98,304 positions
    assert model.num_parameters() - 256 * 384 == 10_646_784


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"bias": True},
        {"tie_weights": False},
        {"positional": "sinusoidal"},
        {"positional": "none"},
        {"attention": "none"},
        {"norm_first": False},
        {"residual": False, "activation": "relu"},
    ],
    ids=str,
)
def test_parameter_count_closed_form(overrides: dict) -> None:
    cfg = tiny(**overrides)
    assert Transformer(cfg).num_parameters() == expected_parameters(cfg)


def test_classic_encoder_has_the_paper_size() -> None:
    cfg = transformer_base(vocab_size=100)
    model = Transformer(cfg)
    reference = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(512, 8, 2048, batch_first=True), num_layers=6, enable_nested_tensor=False
    )
    layers = sum(p.numel() for p in reference.parameters())
    assert layers == 18_914_304  # 6 x 3,152,384
    assert sum(p.numel() for p in model.blocks.parameters()) == layers
    assert model.num_parameters() == expected_parameters(cfg) == layers + 100 * 512  # + tied embedding


def copy_into_reference(model: Transformer, reference: nn.TransformerEncoder) -> None:
    """Load our block weights into nn.TransformerEncoderLayer's names (in_proj = our fused qkv)."""
    renames = (
        ("attn.qkv.", "self_attn.in_proj_"),
        ("attn.proj.", "self_attn.out_proj."),
        ("mlp.fc1.", "linear1."),
        ("mlp.fc2.", "linear2."),
    )  # norm1 and norm2 have the same names in both
    state = {}
    for name, value in model.blocks.state_dict().items():
        for ours, theirs in renames:
            name = name.replace(ours, theirs)
        state[f"layers.{name}"] = value
    reference.load_state_dict(state)


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_blocks_equal_nn_transformer_encoder(norm_first: bool, activation: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(bias=True, causal=False, norm_first=norm_first, activation=activation)
    model = Transformer(cfg).eval()
    reference = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(
            32, 4, 64, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
        ),
        num_layers=2,
        enable_nested_tensor=False,
    ).eval()
    copy_into_reference(model, reference)
    x = torch.randn(3, 9, 32)
    pad = torch.arange(9)[None, :] >= torch.tensor([9, 6, 3])[:, None]  # True = padding
    ours = x
    for block in model.blocks:
        ours = block(ours, pad)
    expected = reference(x, src_key_padding_mask=pad)
    real = ~pad  # PyTorch's fast path may zero the padded positions; only real tokens are defined
    torch.testing.assert_close(ours[real], expected[real], atol=1e-5, rtol=1e-5)


def test_causal_model_ignores_future_tokens() -> None:
    torch.manual_seed(0)
    model = Transformer(tiny()).eval()
    idx = tokens(model.cfg)
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % model.cfg.vocab_size
    before, after = model(idx), model(changed)
    torch.testing.assert_close(before[:, :10], after[:, :10])
    assert not torch.allclose(before[:, 10:], after[:, 10:])


def test_bidirectional_model_sees_the_future() -> None:
    torch.manual_seed(0)
    model = Transformer(tiny(causal=False)).eval()
    idx = tokens(model.cfg)
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % model.cfg.vocab_size
    assert not torch.allclose(model(idx)[:, :10], model(changed)[:, :10])


def test_forward_shapes_and_sequence_limit() -> None:
    model = Transformer(tiny())
    assert model(tokens(model.cfg, B=3, T=5)).shape == (3, 5, 11)
    assert model.forward_features(tokens(model.cfg, B=3, T=5)).shape == (3, 5, 32)
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(model.cfg, T=17))


def test_explicit_attention_path_equals_sdpa_path() -> None:
    torch.manual_seed(0)
    fast = Transformer(tiny()).eval()
    slow = Transformer(tiny(attention="explicit")).eval()
    slow.load_state_dict(fast.state_dict())
    idx = tokens(fast.cfg)
    torch.testing.assert_close(slow(idx), fast(idx), atol=1e-5, rtol=1e-5)


def test_no_attention_means_no_token_mixing() -> None:
    torch.manual_seed(0)
    model = Transformer(tiny(attention="none", causal=False)).eval()
    assert not any("attn" in name for name, _ in model.named_parameters())
    idx = tokens(model.cfg)
    changed = idx.clone()
    changed[:, 3] = (changed[:, 3] + 1) % model.cfg.vocab_size
    before, after = model(idx), model(changed)
    keep = [t for t in range(16) if t != 3]
    torch.testing.assert_close(before[:, keep], after[:, keep])  # every other position is untouched
    assert not torch.allclose(before[:, 3], after[:, 3])


def test_no_positional_encoding_makes_a_bidirectional_model_permutation_equivariant() -> None:
    torch.manual_seed(0)
    perm = torch.randperm(16)
    for positional, equivariant in (("none", True), ("learned", False), ("sinusoidal", False)):
        model = Transformer(tiny(positional=positional, causal=False)).eval()
        idx = tokens(model.cfg)
        same = torch.allclose(model(idx[:, perm]), model(idx)[:, perm], atol=1e-5)
        assert same == equivariant, positional


def test_residual_switch_changes_the_function_not_the_weights() -> None:
    torch.manual_seed(0)
    with_skip = Transformer(tiny()).eval()
    without = Transformer(tiny(residual=False)).eval()
    without.load_state_dict(with_skip.state_dict())  # same parameters, by name and shape
    idx = tokens(with_skip.cfg)
    assert not torch.allclose(with_skip(idx), without(idx))
    # Without skips the first block's output is the MLP branch alone: x -> mlp(norm2(attn(norm1(x)))).
    block = without.blocks[0]
    x = torch.randn(2, 16, 32)
    expected = block.mlp(block.norm2(block.attn(block.norm1(x))))
    torch.testing.assert_close(block(x), expected)


def test_post_ln_output_is_normalized_and_pre_ln_adds_a_final_norm() -> None:
    torch.manual_seed(0)
    post = Transformer(tiny(norm_first=False)).eval()
    assert isinstance(post.norm, nn.Identity)
    features = post.forward_features(tokens(post.cfg))  # last op is the last block's LayerNorm (gain 1, no bias)
    torch.testing.assert_close(features.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    pre = Transformer(tiny()).eval()
    pre.norm = nn.Identity()  # without the final norm the pre-LN residual stream is not normalized
    assert pre.forward_features(tokens(pre.cfg)).mean(-1).abs().max() > 1e-3


def test_dropout_is_the_only_train_mode_randomness() -> None:
    idx = tokens(tiny())
    for dropout, deterministic in ((0.0, True), (0.3, False)):
        model = Transformer(tiny(dropout=dropout)).train()
        assert torch.equal(model(idx), model(idx)) == deterministic


def test_tied_head_shares_the_embedding_and_no_weight_decay_names_exist() -> None:
    model = Transformer(tiny())
    assert model.head.weight is model.tok_emb.weight
    names = dict(model.named_parameters())
    assert model.no_weight_decay() == {"pos_emb.weight"} and set(model.no_weight_decay()) <= set(names)
    assert Transformer(tiny(positional="sinusoidal")).no_weight_decay() == set()


def test_full_size_classic_encoder_takes_an_optimizer_step() -> None:
    torch.manual_seed(0)
    model = Transformer(transformer_base(vocab_size=64))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    idx = torch.randint(0, 64, (2, 32))
    pad = torch.zeros(2, 32, dtype=torch.bool)
    pad[1, 20:] = True
    before = model.blocks[0].attn.qkv.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(idx, pad).flatten(0, 1), idx.flatten())  # reconstruct the input
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.blocks[0].attn.qkv.weight)


@pytest.mark.gpu
def test_lm_memorises_a_batch_under_bf16_autocast_and_compile_on_gpu() -> None:
    """The training path on a GPU: full-size LM, torch.compile, bf16 autocast, flash SDPA, fused AdamW."""
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(dropout=0.0)).cuda()
    compiled = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    idx = (torch.arange(257, device="cuda") + torch.randint(0, 65, (8, 1), device="cuda")) % 65  # next = this + 1
    losses = []
    for _ in range(10):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = compiled(idx[:, :-1])
        loss = nn.functional.cross_entropy(logits.float().flatten(0, 1), idx[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert logits.dtype == torch.bfloat16 and all(map(math.isfinite, losses))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"d_model": 30}, "divisible"),
        ({"attention": "linear"}, "attention"),
        ({"positional": "rotary"}, "positional"),
        ({"activation": "swish"}, "activation"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_layers": 0}, "num_layers"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)


@pytest.mark.parametrize("file,preset", [("transformer", TransformerConfig), ("transformer_base", transformer_base)])
def test_model_yaml_matches_its_dataclass_preset(file: str, preset) -> None:
    content = yaml.safe_load((CONFIGS / "model" / f"{file}.yaml").read_text())
    assert content.pop("defaults") == ["base_transformer", "_self_"]
    fields = {f.name for f in dataclasses.fields(TransformerConfig)}
    assert set(content) <= fields, f"unknown keys {set(content) - fields}"
    merged = OmegaConf.merge(OmegaConf.structured(TransformerConfig), content)  # a typo would raise here too
    assert OmegaConf.to_object(merged) == preset()
