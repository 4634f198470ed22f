"""ImageClassificationTask: augmented batches, determinism, whole-test-set evaluation, and that training learns."""

from __future__ import annotations

import pytest
import torch

from {{ cookiecutter.package }}.data.augment import CIFAR10_MEAN, CIFAR10_STD, normalize, random_crop_flip
from {{ cookiecutter.package }}.data.types import ImageData
from {{ cookiecutter.package }}.models.vit import ViTConfig
from {{ cookiecutter.package }}.tasks.vit import ImageClassificationTask, cutmix_or_mixup

CLASSES = ("horizontal_stripes", "vertical_stripes", "bright_top", "bright_bottom")


def pattern_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 3, 16, 16) uint8 images of four classes that survive translation and horizontal flips, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    rows = torch.arange(16)[:, None].expand(16, 16)
    cols = rows.T
    patterns = torch.stack([(rows // 2) % 2, (cols // 2) % 2, (rows < 8).long(), (rows >= 8).long()]).float()
    colour = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)  # random tint: the class is in the layout only
    images = 60 + 140 * patterns[labels][:, None] * colour + 30 * torch.randn(n, 3, 16, 16, generator=g)
    return images.clamp(0, 255).to(torch.uint8), labels


def image_data(n_train: int = 512, n_test: int = 200) -> ImageData:
    train_images, train_labels = pattern_images(n_train, seed=0)
    test_images, test_labels = pattern_images(n_test, seed=1)
    return ImageData(train_images, train_labels, test_images, test_labels, CLASSES)


def tiny(**overrides) -> ViTConfig:
    base = dict(image_size=16, patch_size=4, dim=32, depth=2, num_heads=4, mlp_ratio=2.0, drop_path=0.0)
    return ViTConfig(**{**base, **overrides})


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_classes_and_size_come_from_the_data() -> None:
    task = ImageClassificationTask(tiny(), image_data())
    assert task.num_train == 512 and task.unit == "images"
    assert task.cfg.num_classes == 4 and task.model.head.out_features == 4
    with pytest.raises(ValueError, match="image_size"):
        ImageClassificationTask(tiny(image_size=32), image_data())


def test_batch_is_crop_flip_then_standardisation_of_the_indexed_images() -> None:
    data = image_data()
    task = ImageClassificationTask(tiny(), data)
    indices = torch.tensor([5, 0, 17, 5])
    batch = task.batch(indices, gen(3))
    images, labels, partner_labels, lam = batch
    expected = normalize(random_crop_flip(data.train_images[indices], gen(3), padding=4), CIFAR10_MEAN, CIFAR10_STD)
    torch.testing.assert_close(images, expected)
    assert torch.equal(labels, data.train_labels[indices]) and torch.equal(partner_labels, labels)
    assert torch.equal(lam, torch.ones(4))  # mix_prob = 0: nothing is mixed
    assert images.dtype == torch.float32 and images.shape == (4, 3, 16, 16)
    assert task.count(batch) == 4


@pytest.mark.parametrize("mix_prob", [0.0, 0.5])
def test_batch_is_determined_by_the_generator(mix_prob: float) -> None:
    task = ImageClassificationTask(tiny(mix_prob=mix_prob), image_data())
    indices = torch.arange(64)
    first, again, other = (task.batch(indices, gen(s)) for s in (1, 1, 2))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_mixing_pastes_or_blends_the_partner_and_reports_the_share() -> None:
    B = 64
    images = torch.arange(B, dtype=torch.float32)[:, None, None, None].expand(B, 3, 8, 8)  # image i is all i
    mixed, partner, lam = cutmix_or_mixup(images, gen(0), prob=0.75)
    assert torch.equal(partner, torch.arange(B - 1, -1, -1))
    kinds = {"none": 0, "cutmix": 0, "mixup": 0}
    for i in range(B):
        own, other = float(i), float(B - 1 - i)
        values = set(mixed[i].unique().tolist())
        if lam[i] == 1:
            kinds["none"] += 1
            assert values == {own}
        elif values <= {own, other}:  # CutMix: each pixel is one image's, lam is the share kept
            kinds["cutmix"] += 1
            assert (mixed[i] == own).float().mean() == pytest.approx(lam[i].item())
        else:  # Mixup: one blend everywhere
            kinds["mixup"] += 1
            torch.testing.assert_close(mixed[i], torch.full_like(mixed[i], lam[i] * own + (1 - lam[i]) * other))
    assert all(count > 5 for count in kinds.values()), kinds
    assert torch.equal(cutmix_or_mixup(images, gen(0), prob=0.0)[0], images)


def test_mixed_loss_weights_both_labels() -> None:
    torch.manual_seed(0)
    task = ImageClassificationTask(tiny(mix_prob=1.0, label_smoothing=0.1), image_data())
    images, labels, partner_labels, lam = task.batch(torch.arange(32), gen(0))
    assert (lam < 1).any() and not torch.equal(partner_labels, labels)
    logits = task.model(images)
    ce = torch.nn.functional.cross_entropy
    per_image = [
        lam[i] * ce(logits[i], labels[i], label_smoothing=0.1)
        + (1 - lam[i]) * ce(logits[i], partner_labels[i], label_smoothing=0.1)
        for i in range(32)
    ]
    expected = torch.stack(per_image).mean()
    torch.testing.assert_close(task.loss(task.model, (images, labels, partner_labels, lam))[0], expected)


def test_evaluate_is_deterministic_whole_test_set_and_chunk_size_free() -> None:
    torch.manual_seed(0)
    data = image_data()
    task = ImageClassificationTask(tiny(dropout=0.1, drop_path=0.2), data, eval_batch_size=64)
    task.model.train()
    first = task.evaluate(task.model)
    assert first == task.evaluate(task.model) and task.model.training
    assert set(first) == {"test/loss", "test/acc"}
    # 200 test images in chunks of 64 (last one 8) give the same numbers as a single chunk.
    whole = ImageClassificationTask(tiny(), data, eval_batch_size=1000)
    whole.model.load_state_dict(task.model.state_dict())
    assert whole.evaluate(whole.model) == pytest.approx(first, rel=1e-6)
    logits = task.model.eval()(normalize(data.test_images, CIFAR10_MEAN, CIFAR10_STD))
    assert first["test/acc"] == pytest.approx((logits.argmax(1) == data.test_labels).float().mean().item())


def test_loss_uses_label_smoothing() -> None:
    torch.manual_seed(0)
    data = image_data()
    plain = ImageClassificationTask(tiny(label_smoothing=0.0), data)
    smooth = ImageClassificationTask(tiny(label_smoothing=0.3), data)
    smooth.model.load_state_dict(plain.model.state_dict())
    batch = plain.example_batch(16)
    logits = plain.model(batch[0])
    expected = torch.nn.functional.cross_entropy(logits, batch[1], label_smoothing=0.3)  # lam = 1: plain
    torch.testing.assert_close(smooth.loss(smooth.model, batch)[0], expected)
    assert not torch.allclose(plain.loss(plain.model, batch)[0], expected)


def test_training_learns_the_patterns() -> None:
    """A few hundred AdamW steps take test accuracy from chance (25 %) to almost perfect."""
    torch.manual_seed(0)
    task = ImageClassificationTask(tiny(), image_data())
    initial = task.evaluate(task.model)
    optimizer = torch.optim.AdamW(task.model.parameters(), lr=3e-3)
    step = 0
    for epoch in range(10):  # 10 epochs x 8 steps of 64 images
        for indices in torch.randperm(task.num_train, generator=gen(epoch)).split(64):
            loss, metrics = task.loss(task.model, task.batch(indices, gen(1000 + step)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    final = task.evaluate(task.model)
    assert initial["test/acc"] < 0.45
    assert final["test/acc"] > 0.9
    assert final["test/loss"] < 0.5 * initial["test/loss"] and "train/acc" in metrics
