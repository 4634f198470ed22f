"""Vision Transformer: sizes of the named variants, equality with timm, and what each ablation switch does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from {{ cookiecutter.package }}.models.vit import VisionTransformer, ViTConfig, vit_b16

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def tiny(**overrides) -> ViTConfig:
    base = dict(image_size=16, patch_size=4, dim=32, depth=2, num_heads=4, mlp_ratio=2.0, drop_path=0.0)
    return ViTConfig(**{**base, **overrides})


def images(cfg: ViTConfig, B: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 3, cfg.image_size, cfg.image_size, generator=g)


def expected_parameters(cfg: ViTConfig) -> int:
    """Closed form: patch conv + class token + positions + blocks + final norm + head."""
    d, hidden = cfg.dim, int(cfg.dim * cfg.mlp_ratio)
    tokens = (cfg.image_size // cfg.patch_size) ** 2 + (cfg.pool == "cls")
    patch = cfg.in_channels * cfg.patch_size**2 * d + d
    block = (3 * d * d + 3 * d) + (d * d + d) + (d * hidden + hidden) + (hidden * d + d) + 4 * d
    cls = d if cfg.pool == "cls" else 0
    positions = tokens * d if cfg.pos_embedding else 0
    return patch + cls + positions + cfg.depth * block + 2 * d + d * cfg.num_classes + cfg.num_classes


def test_cifar_default_is_the_6_3m_model() -> None:
    model = VisionTransformer(ViTConfig())
    assert model.num_parameters() == expected_parameters(ViTConfig()) == 6_268_810
    assert model.num_patches == 64


@pytest.mark.parametrize(
    "overrides", [{}, {"pool": "gap"}, {"pos_embedding": False}, {"patch_size": 8}, {"mlp_ratio": 4.0}], ids=str
)
def test_parameter_count_closed_form(overrides: dict) -> None:
    cfg = tiny(**overrides)
    assert VisionTransformer(cfg).num_parameters() == expected_parameters(cfg)


def timm_twin(cfg: ViTConfig) -> nn.Module:
    timm = pytest.importorskip("timm")
    return timm.models.vision_transformer.VisionTransformer(
        img_size=cfg.image_size,
        patch_size=cfg.patch_size,
        num_classes=cfg.num_classes,
        embed_dim=cfg.dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        global_pool="token",
    )


def test_vit_b16_has_the_paper_size() -> None:
    model = VisionTransformer(vit_b16())
    assert model.num_parameters() == expected_parameters(vit_b16()) == 86_567_656  # "86M" in Table 1
    assert model.num_patches == 196


@pytest.mark.slow
def test_vit_b16_size_agrees_with_timm() -> None:
    reference = timm_twin(vit_b16())
    assert sum(p.numel() for p in reference.parameters()) == 86_567_656


@pytest.mark.parametrize("attention", ["sdpa", "explicit"])
def test_equals_timm_vision_transformer_with_the_same_weights(attention: str) -> None:
    torch.manual_seed(0)
    cfg = tiny(attention=attention)
    ours = VisionTransformer(cfg).eval()
    reference = timm_twin(cfg).eval()
    state = ours.state_dict()
    state["pos_embed"] = state.pop("pos_embed.weight")[None]  # timm keeps a leading batch dim: (1, N, C)
    reference.load_state_dict(state)
    x = images(cfg, B=3)
    torch.testing.assert_close(ours(x), reference(x), atol=1e-5, rtol=1e-5)


def test_stages_compose_and_pooling_switch() -> None:
    torch.manual_seed(0)
    x = images(tiny(), B=3)
    cls = VisionTransformer(tiny()).eval()
    features = cls.forward_features(x)
    assert features.shape == (3, 1 + 16, 32)
    torch.testing.assert_close(cls(x), cls.head(features[:, 0]))
    gap = VisionTransformer(tiny(pool="gap")).eval()
    assert gap.cls_token is None
    features = gap.forward_features(x)
    assert features.shape == (3, 16, 32)
    torch.testing.assert_close(gap(x), gap.head(features.mean(1)))


def test_patch_size_sets_the_number_of_tokens() -> None:
    x = images(tiny(), B=2)
    for patch, tokens in ((4, 16), (8, 4), (2, 64)):
        model = VisionTransformer(tiny(patch_size=patch))
        assert model.forward_features(x).shape == (2, 1 + tokens, 32)
    with pytest.raises(ValueError, match="divisible"):
        tiny(patch_size=5)


def test_patch_embedding_is_a_linear_map_of_each_patch() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(tiny())
    x = images(tiny(), B=1)
    tokens = model.patch_embed(x)  # (1, 16, 32)
    patch = x[0, :, 4:8, 8:12]  # row 1, column 2 of the 4 x 4 grid: token 1 * 4 + 2 = 6
    conv = model.patch_embed.proj
    torch.testing.assert_close(tokens[0, 6], conv.weight.flatten(1) @ patch.flatten() + conv.bias)


def shuffle_patches(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Move whole patches: roll the image by one patch down and two patches right (a permutation of tokens)."""
    return x.roll(shifts=(patch, 2 * patch), dims=(2, 3))


def test_without_position_embedding_the_model_ignores_patch_order() -> None:
    torch.manual_seed(0)
    x = images(tiny(), B=2)
    for pos_embedding, invariant in ((False, True), (True, False)):
        model = VisionTransformer(tiny(pos_embedding=pos_embedding)).eval()
        same = torch.allclose(model(shuffle_patches(x, 4)), model(x), atol=1e-5)
        assert same == invariant
    assert isinstance(VisionTransformer(tiny(pos_embedding=False)).pos_embed, nn.Identity)


def test_drop_path_and_dropout_only_act_in_training() -> None:
    x = images(tiny(), B=4)
    model = VisionTransformer(tiny(drop_path=0.5, dropout=0.1))
    rates = [block.drop_path2.p for block in model.blocks[1:]]
    assert isinstance(model.blocks[0].drop_path1, nn.Identity) and rates == [0.5]  # linear from 0 to drop_path
    model.train()
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


def test_no_weight_decay_names_exist() -> None:
    names = dict(VisionTransformer(tiny()).named_parameters())
    assert VisionTransformer(tiny()).no_weight_decay() == {"cls_token", "pos_embed.weight"} <= set(names)
    assert VisionTransformer(tiny(pool="gap", pos_embedding=False)).no_weight_decay() == set()


@pytest.mark.slow
def test_vit_b16_builds_and_takes_an_optimizer_step_on_cpu() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(vit_b16())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.randn(2, 3, 224, 224), torch.tensor([3, 997])
    before = model.blocks[11].mlp.fc2.weight.detach().clone()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and abs(loss.item() - 6.9) < 1.0  # near ln(1000) at initialisation
    assert not torch.equal(before, model.blocks[11].mlp.fc2.weight)


@pytest.mark.gpu
def test_cifar_vit_learns_a_batch_under_bf16_autocast_and_compile_on_gpu() -> None:
    torch.manual_seed(0)
    model = VisionTransformer(ViTConfig(drop_path=0.0)).cuda()
    compiled = torch.compile(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x, y = torch.randn(64, 3, 32, 32, device="cuda"), torch.randint(0, 10, (64,), device="cuda")
    losses = []
    for _ in range(20):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(compiled(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"dim": 30}, "divisible"),
        ({"pool": "max"}, "pool"),
        ({"attention": "none"}, "attention"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
        ({"depth": 0}, "depth"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        tiny(**overrides)


@pytest.mark.parametrize("file,preset", [("vit", ViTConfig), ("vit_b16", vit_b16)])
def test_model_yaml_matches_its_dataclass_preset(file: str, preset) -> None:
    content = yaml.safe_load((CONFIGS / "model" / f"{file}.yaml").read_text())
    assert content.pop("defaults") == ["base_vit", "_self_"]
    fields = {f.name for f in dataclasses.fields(ViTConfig)}
    assert set(content) <= fields, f"unknown keys {set(content) - fields}"
    merged = OmegaConf.merge(OmegaConf.structured(ViTConfig), content)
    assert OmegaConf.to_object(merged) == preset()
