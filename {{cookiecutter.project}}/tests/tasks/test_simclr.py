"""SimCLR task: deterministic two-view batches, a loss that falls, deterministic evaluation."""

from __future__ import annotations

import pytest
import torch

from {{ cookiecutter.package }}.data.cifar10 import SYNTHETIC_CLASSES, generate_synthetic
from {{ cookiecutter.package }}.data.types import ImageData
from {{ cookiecutter.package }}.models.simclr import SimCLRConfig
from {{ cookiecutter.package }}.tasks.simclr import SimCLRTask
from {{ cookiecutter.package }}.train.optim import build_optimizer

TINY = {"width": 8, "blocks": [1, 1, 1], "projection_hidden_dim": 32, "projection_dim": 16, "probe_steps": 20}


@pytest.fixture(scope="module")
def data() -> ImageData:
    """256 training and 128 test images of the synthetic CIFAR-10 twin (class structure survives crops)."""
    train_images, train_labels = generate_synthetic(256, seed=0, split="train")
    test_images, test_labels = generate_synthetic(128, seed=0, split="test")
    return ImageData(
        torch.from_numpy(train_images),
        torch.from_numpy(train_labels),
        torch.from_numpy(test_images),
        torch.from_numpy(test_labels),
        SYNTHETIC_CLASSES,
    )


def make_task(data: ImageData, **overrides) -> SimCLRTask:
    torch.manual_seed(0)
    return SimCLRTask(SimCLRConfig(**{**TINY, **overrides}), data)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("augmentation", ["strong", "weak"])
def test_batch_is_two_views_and_a_function_of_the_generator(data, augmentation):
    task = make_task(data, augmentation=augmentation)
    indices = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    batch = task.batch(indices, gen(0))
    assert batch.shape == (16, 3, 32, 32) and batch.dtype == torch.float32
    assert torch.equal(batch, task.batch(indices, gen(0)))
    assert not torch.equal(batch, task.batch(indices, gen(1)))
    first, second = batch.chunk(2)
    assert not torch.equal(first, second)  # two independent views of the same images
    # Images 1 and 3 hold the same index: their views differ too (each view draws its own parameters).
    assert not torch.equal(first[1], first[3])


def test_channels_last_batches(data):
    task = SimCLRTask(SimCLRConfig(**TINY), data, channels_last=True)
    batch = task.batch(torch.arange(4), gen(0))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    task.model.to(memory_format=torch.channels_last)
    loss, _ = task.loss(task.model, batch)
    assert torch.isfinite(loss)


def test_loss_falls_and_features_cluster_by_class(data):
    task = make_task(data, crop_scale_min=0.3)
    optimizer = build_optimizer(task.model, lr=1e-2, weight_decay=0.05, betas=(0.9, 0.95), device=torch.device("cpu"))
    fixed = task.batch(torch.arange(64), gen(123))  # the same batch before and after training

    def fixed_loss() -> float:
        with torch.no_grad():
            return task.loss(task.model, fixed)[0].item()

    before = fixed_loss()
    for step in range(30):
        indices = torch.randperm(task.num_train, generator=gen(1000 + step))[:32]
        loss, metrics = task.loss(task.model, task.batch(indices, gen(step)))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    after = fixed_loss()
    assert after < before - 0.2, (before, after)
    assert 0 < metrics["train/positive_cos"] <= 1
    assert task.evaluate(task.model)["knn/acc"] > 0.2  # chance is 0.1


def test_evaluate_and_finish_are_deterministic_and_leave_the_model_alone(data):
    task = make_task(data)
    task.model.train()
    state = {k: v.clone() for k, v in task.model.state_dict().items()}
    first, again = task.evaluate(task.model), task.evaluate(task.model)
    assert first == again and set(first) == {"knn/acc"} and 0 <= first["knn/acc"] <= 1
    probe = task.finish(task.model)
    assert probe == task.finish(task.model) and 0 <= probe["probe/acc"] <= 1
    assert task.model.training  # restored after the eval-mode feature pass
    for key, value in task.model.state_dict().items():
        assert torch.equal(value, state[key]), key  # BatchNorm running statistics untouched


def test_example_batch_is_fixed_and_counts_both_views(data):
    task = make_task(data)
    batch = task.example_batch(3)
    assert batch.shape == (6, 3, 32, 32)
    assert torch.equal(batch, task.example_batch(3))
    assert torch.equal(batch[:3], batch[3:])
    assert task.count(batch) == 6 and task.unit == "images"


@pytest.mark.parametrize(
    "key, value", [("augmentation", "medium"), ("crop_scale_min", 0.0), ("jitter_strength", 2.0), ("knn_k", 0)]
)
def test_rejects_bad_settings(data, key, value):
    with pytest.raises(ValueError, match=key):
        make_task(data, **{key: value})


@pytest.mark.gpu
def test_cuda_bf16_channels_last_step_is_deterministic(data, monkeypatch):
    """The GPU speed path (bf16 autocast, NHWC) under deterministic algorithms: no op may refuse to run."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    device = torch.device("cuda")
    try:
        results = []
        for _ in range(2):
            task = make_task(data)
            task.channels_last = True
            task.to(device)
            task.model.to(memory_format=torch.channels_last)
            batch = task.batch(torch.arange(32, device=device), torch.Generator(device).manual_seed(0))
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = task.loss(task.model, batch)
            loss.backward()
            grad = task.model.encoder.stem[0].weight.grad
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
                knn = task.evaluate(task.model)["knn/acc"]
            results.append((batch, loss.detach(), grad, knn))
        (batch1, loss1, grad1, knn1), (batch2, loss2, grad2, knn2) = results
        assert torch.equal(batch1, batch2) and torch.equal(loss1, loss2) and torch.equal(grad1, grad2)
        assert knn1 == knn2 and 0 <= knn1 <= 1
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
