"""SimCLR model: NT-Xent against hand-computed values and the naive loop, encoder shapes and size."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torchvision
from torch import nn

from {{ cookiecutter.package }}.models.simclr import NTXentLoss, ResNet, SimCLR, SimCLRConfig, nt_xent_naive


def test_nt_xent_identical_views_closed_form():
    """Two images, views equal: each anchor sees its positive at cos 1 and two negatives at cos 0.

    l = -log(e^1 / (e^1 + e^0 + e^0)) = log(1 + 2 / e) for all four anchors (t = 1).
    """
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = math.log(1 + 2 / math.e)
    assert NTXentLoss(temperature=1.0)(z, z).item() == pytest.approx(expected, abs=1e-6)
    assert nt_xent_naive(z, z, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_nt_xent_hand_computed_asymmetric_case():
    """z1 = [(1, 0), (0, 1)], z2 = [(0, 1), (-1, 0)], t = 0.5 (logits are cosines x 2).

    anchor (1, 0):  others (0, 1) 0, positive (0, 1) 0, (-1, 0) -2  -> log(2 + e^-2)
    anchor (0, 1):  others (1, 0) 0, (0, 1) 2, positive (-1, 0) 0   -> log(2 + e^2)
    anchor (0, 1)': positive (1, 0) 0, (0, 1) 2, (-1, 0) 0          -> log(2 + e^2)
    anchor (-1, 0): (1, 0) -2, positive (0, 1) 0, (0, 1) 0          -> log(2 + e^-2)
    (each anchor's positive logit is 0, so l = logsumexp of its three other logits).
    """
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    expected = (math.log(2 + math.exp(-2)) + math.log(2 + math.exp(2))) / 2
    assert NTXentLoss(temperature=0.5)(z1, z2).item() == pytest.approx(expected, abs=1e-6)
    assert nt_xent_naive(z1, z2, temperature=0.5).item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("n, d", [(1, 3), (2, 2), (5, 7), (16, 32)])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5, 1.0, 2.0])
def test_nt_xent_matches_naive_reference(n, d, temperature):
    generator = torch.Generator().manual_seed(n * 100 + d)
    z1, z2 = torch.randn(n, d, generator=generator), 3 * torch.randn(n, d, generator=generator)  # any scale
    fast = NTXentLoss(temperature)(z1, z2)
    torch.testing.assert_close(fast, nt_xent_naive(z1, z2, temperature), rtol=1e-5, atol=1e-5)


def test_nt_xent_is_symmetric_in_the_views_and_invariant_to_image_order():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 16, generator=generator), torch.randn(8, 16, generator=generator)
    loss = NTXentLoss(0.5)
    torch.testing.assert_close(loss(z1, z2), loss(z2, z1))
    perm = torch.randperm(8, generator=generator)
    torch.testing.assert_close(loss(z1[perm], z2[perm]), loss(z1, z2))


def test_nt_xent_falls_when_positives_align():
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(32, 16, generator=generator)
    noise = torch.randn(32, 16, generator=generator)
    loss = NTXentLoss(0.5)
    assert loss(z1, z1 + 0.1 * noise) < loss(z1, z1 + noise) < loss(z1, noise)


@pytest.mark.parametrize("temperature", [0.0, -0.5, 1e-9])
def test_nt_xent_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature)


def test_nt_xent_rejects_mismatched_views():
    with pytest.raises(ValueError, match="equal shape"):
        NTXentLoss()(torch.randn(4, 8), torch.randn(3, 8))


def test_nt_xent_gradcheck():
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(4, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    z2 = torch.randn(4, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(NTXentLoss(0.3), (z1, z2))
    assert torch.autograd.gradcheck(lambda a, b: nt_xent_naive(a, b, 0.3), (z1, z2))


def _ddp_worker(rank: int, world: int, init_file: str, z1: torch.Tensor, z2: torch.Tensor, out: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    n = z1.shape[0] // world
    local1 = z1[rank * n : (rank + 1) * n].clone().requires_grad_()
    local2 = z2[rank * n : (rank + 1) * n].clone().requires_grad_()
    loss = NTXentLoss(0.5, gather_distributed=True)(local1, local2)
    loss.backward()
    out[rank] = (loss.detach(), local1.grad, local2.grad)
    dist.destroy_process_group()


@pytest.mark.slow
def test_nt_xent_gathered_over_two_processes_equals_the_global_batch(tmp_path: Path):
    """Each rank's loss covers its anchors against all 2N embeddings; the mean is the full-batch loss.

    The all-gather's backward sums the gradients of every rank's loss, and DDP divides by the world size,
    so the gradient a rank applies is that of the full-batch loss.
    """
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(8, 6, generator=generator), torch.randn(8, 6, generator=generator)
    full1, full2 = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    full = NTXentLoss(0.5)(full1, full2)
    full.backward()
    world = 2
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_worker, args=(world, str(tmp_path / "init"), z1, z2, out), nprocs=world)
        results = dict(out)
    torch.testing.assert_close(sum(results[r][0] for r in range(world)) / world, full.detach())
    for rank in range(world):
        rows = slice(rank * 4, (rank + 1) * 4)
        torch.testing.assert_close(results[rank][1] / world, full1.grad[rows])
        torch.testing.assert_close(results[rank][2] / world, full2.grad[rows])


def test_resnet18_matches_torchvision_with_a_cifar_stem():
    """ResNet-18 with a 3x3 stride-1 stem and no max-pool: same parameter count as torchvision's, re-stemmed."""
    reference = torchvision.models.resnet18()
    reference.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    reference.fc = nn.Identity()
    encoder = ResNet(64, [2, 2, 2, 2])
    count = sum(p.numel() for p in encoder.parameters())
    assert count == sum(p.numel() for p in reference.parameters()) == 11_168_832
    features = encoder(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, 512)


def test_stages_halve_the_resolution_and_double_the_width():
    encoder = ResNet(8, [1, 1, 1, 1])
    x = encoder.stem(torch.randn(2, 3, 32, 32))
    assert x.shape == (2, 8, 32, 32)  # no stride, no max-pool in the stem
    shapes = []
    for stage in encoder.stages:
        x = stage(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 4, 4)]


@pytest.mark.parametrize("projection_head, out_dim", [(True, 128), (False, 512)])
def test_projection_head_switch_sets_the_embedding_size(projection_head, out_dim):
    model = SimCLR(SimCLRConfig(blocks=[1, 1, 1, 1], projection_head=projection_head))  # 512 features, cheaper
    x = torch.randn(3, 3, 8, 8)
    assert model(x).shape == (3, out_dim) and model.out_dim == out_dim
    assert model.features(x).shape == (3, 512)
    head_params = sum(p.numel() for p in model.head.parameters())
    assert head_params == (512 * 512 + 2 * 512 + 512 * 128 + 128 if projection_head else 0)


def test_channels_last_gives_the_same_output():
    torch.manual_seed(0)
    model = SimCLR(SimCLRConfig(width=8, blocks=[1, 1])).eval()
    x = torch.randn(4, 3, 16, 16)
    expected = model(x)
    model.to(memory_format=torch.channels_last)
    torch.testing.assert_close(model(x.contiguous(memory_format=torch.channels_last)), expected)


def test_resnet_rejects_bad_shapes():
    with pytest.raises(ValueError, match="blocks"):
        ResNet(64, [])
