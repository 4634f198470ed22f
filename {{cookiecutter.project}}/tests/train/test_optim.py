import itertools
import math

import pytest
import torch
from torch import nn

from {{ cookiecutter.package }}.train.optim import WarmupCosine, build_scheduler, param_groups


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.pos = nn.Parameter(torch.zeros(1, 3, 4))

    def no_weight_decay(self) -> set[str]:
        return {"pos"}


def test_only_matrices_are_decayed() -> None:
    decay, no_decay = param_groups(Tiny(), weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 4  # linear bias, norm weight + bias, exempted position embedding


def test_warmup_then_cosine_to_min_ratio() -> None:
    schedule = WarmupCosine(warmup_steps=10, total_steps=110, min_ratio=0.1)
    assert schedule(0) == pytest.approx(0.1)
    assert schedule(9) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert schedule(110) == pytest.approx(0.1)
    assert schedule(500) == pytest.approx(0.1)  # stays at the floor past the end
    values = [schedule(s) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_scheduler_state_roundtrip() -> None:
    model = nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1.0)
    sched = build_scheduler(opt, 5, 50, 0.0)
    for _ in range(7):
        opt.step()
        sched.step()
    state = sched.state_dict()
    fresh = build_scheduler(torch.optim.AdamW(model.parameters(), lr=1.0), 5, 50, 0.0)
    fresh.load_state_dict(state)
    assert fresh.get_last_lr() == sched.get_last_lr()


def test_zero_steps_is_an_error() -> None:
    with pytest.raises(ValueError, match="total_steps=0 is not positive"):
        build_scheduler(torch.optim.AdamW(nn.Linear(1, 1).parameters()), 1, 0, 0.1)
