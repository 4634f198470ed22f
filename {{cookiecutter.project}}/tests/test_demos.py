"""The demos behind the walkthrough: vanishing gradients, and BatchNorm vs LayerNorm."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from {{ cookiecutter.package }}.demos import gradient_norms, gradient_report, main, norms_report


@pytest.fixture(scope="module")
def report() -> dict[str, list[float]]:
    return gradient_report(depth=20, width=64, seed=0)


def test_sigmoid_gradient_vanishes_towards_the_input(report: dict[str, list[float]]) -> None:
    norms = report["sigmoid MLP"]
    assert len(norms) == 20
    assert norms[0] / norms[-1] < 1e-8, "20 sigmoid layers shrink the gradient by many orders of magnitude"
    # It shrinks at every layer going backwards: sigmoid' <= 1/4 and the default init's weights are too small
    # to make up for it.
    assert all(earlier < later for earlier, later in itertools.pairwise(norms))


def test_plain_relu_vanishes_too_at_the_default_init(report: dict[str, list[float]]) -> None:
    norms = report["ReLU MLP"]
    assert norms[0] / norms[-1] < 1e-3


def test_residual_layernorm_keeps_every_layer_within_a_small_factor(report: dict[str, list[float]]) -> None:
    norms = report["ReLU residual + LayerNorm"]
    assert max(norms) / min(norms) < 3.0
    assert min(norms) > 1e-2


def test_gradient_norms_match_the_closed_form_of_a_linear_net() -> None:
    """L = mean((W2 (W1 x + b1) + b2 - y)^2)  =>  dL/dW1 = W2^T (2 r / B) x^T summed over the batch."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1)).double()
    x, y = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    with torch.no_grad():
        residual = model(x) - y  # (B, 1)
        grad_hidden = 2 * residual / x.shape[0] @ model[1].weight  # (B, 1) x (1, C) -> (B, C)
        grad_w1 = grad_hidden.T @ x  # (C, B) x (B, C) -> (C, C)
    (norm,) = gradient_norms(model, x, y)
    assert math.isclose(norm, grad_w1.norm().item(), rel_tol=1e-12)


def test_report_is_deterministic_and_leaves_the_global_rng_alone(report: dict[str, list[float]]) -> None:
    state = torch.get_rng_state()
    assert gradient_report(depth=20, width=64, seed=0) == report
    assert torch.equal(torch.get_rng_state(), state)
    assert gradient_report(depth=20, width=64, seed=1) != report


def test_batchnorm_depends_on_the_batch_and_the_mode_layernorm_does_not() -> None:
    behaviour = norms_report(batch=8, features=16, seed=0)
    batch, layer = behaviour["BatchNorm1d"], behaviour["LayerNorm"]
    assert batch.batch_dependence > 0.1 and layer.batch_dependence < 1e-6
    assert batch.train_eval_gap > 0.1 and layer.train_eval_gap < 1e-6
    assert batch.feature_mean < 1e-5, "BatchNorm centres every feature over the batch"
    assert layer.sample_mean < 1e-5, "LayerNorm centres every sample over its features"
    assert layer.feature_mean > 0.1 and batch.sample_mean > 0.1, "...and neither does the other's job"
    assert not batch.batch_of_one and layer.batch_of_one


def test_cli_prints_the_table_and_writes_the_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results" / "gradients.png"
    assert main(["gradients", "--depth", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "sigmoid MLP" in printed and "first / last" in printed
    assert out.read_bytes().startswith(b"\x89PNG")
    assert main(["norms"]) == 0
    assert "BatchNorm1d" in capsys.readouterr().out


def test_bad_arguments_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="depth=1"):
        gradient_report(depth=1)
    assert main(["gradients", "--depth", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: depth=0 is too small; expected an integer >= 2"
    assert main(["norms", "--batch", "1"]) == 2
