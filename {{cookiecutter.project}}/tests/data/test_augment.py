"""Batched augmentation: determinism, agreement with naive per-image references, and its statistics."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from {{ cookiecutter.package }}.data.augment import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    adjust_hue,
    apply_color_jitter,
    color_jitter,
    normalize,
    random_crop_flip,
    random_grayscale,
    random_resized_crop_flip,
    simclr_augment,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_images(batch: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=gen(seed))


def crop_flip_candidates(image: torch.Tensor, padding: int, mode: str) -> torch.Tensor:
    """Naive reference: every translation and flip of one image, via an explicit padded copy.

    Returns (2 * (2p + 1)^2, 3, H, W), ordered by (flip, dy, dx).
    """
    _, H, W = image.shape
    pad_mode = "reflect" if mode == "reflect" else "constant"
    padded = F.pad(image[None].float(), (padding,) * 4, mode=pad_mode)[0]
    crops = []
    for flip in (False, True):
        for dy in range(2 * padding + 1):
            for dx in range(2 * padding + 1):
                crop = padded[:, dy : dy + H, dx : dx + W]
                crops.append(crop.flip(-1) if flip else crop)
    return torch.stack(crops).to(torch.uint8)


@pytest.mark.parametrize("augment", [random_crop_flip, simclr_augment], ids=["crop_flip", "simclr"])
def test_same_generator_same_batch_and_different_generators_differ(augment):
    images = random_images(16)
    first, again = augment(images, gen(1)), augment(images, gen(1))
    assert torch.equal(first, again)
    assert not torch.equal(first, augment(images, gen(2)))
    assert first.dtype == torch.uint8 and first.shape == images.shape


@pytest.mark.parametrize("mode", ["reflect", "zeros"])
def test_crop_flip_is_a_translation_and_flip_of_each_image(mode):
    """Each output equals exactly one naive candidate, and over a large batch every candidate occurs."""
    padding, batch = 2, 2000
    image = random_images(1, size=8)[0]  # random content: all 50 candidates are distinct
    out = random_crop_flip(image.expand(batch, -1, -1, -1), gen(0), padding=padding, padding_mode=mode)
    candidates = crop_flip_candidates(image, padding, mode)
    matches = (out[:, None] == candidates[None]).flatten(2).all(dim=2)  # (batch, candidates)
    assert (matches.sum(dim=1) == 1).all()
    chosen = matches.int().argmax(dim=1)
    counts = torch.bincount(chosen, minlength=len(candidates))
    assert (counts > 0).all()  # all 25 shifts x 2 flips are reachable
    flipped = (chosen >= len(candidates) // 2).float().mean().item()
    assert abs(flipped - 0.5) < 4 * math.sqrt(0.25 / batch)  # within 4 standard deviations


def test_crop_flip_transforms_each_image_of_a_batch_independently():
    images = random_images(64)
    out = random_crop_flip(images, gen(3), padding=2)
    for image, result in zip(images, out, strict=True):
        assert (crop_flip_candidates(image, 2, "reflect") == result).flatten(1).all(dim=1).any()


def test_crop_flip_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        random_crop_flip(torch.rand(2, 3, 8, 8), gen(0))
    with pytest.raises(ValueError, match="padding"):
        random_crop_flip(random_images(2), gen(0), padding=8)
    with pytest.raises(ValueError, match="padding_mode"):
        random_crop_flip(random_images(2), gen(0), padding_mode="edge")


def test_full_size_crop_is_identity_or_mirror():
    images = torch.rand(8, 3, 8, 8)
    same = random_resized_crop_flip(images, gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0)
    mirrored = random_resized_crop_flip(images, gen(0), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0)
    torch.testing.assert_close(same, images, atol=1e-5, rtol=0)
    torch.testing.assert_close(mirrored, images.flip(-1), atol=1e-5, rtol=0)


def test_resized_crop_boxes_follow_the_scale_and_ratio_ranges():
    """On coordinate ramps the output reveals each crop box: its width, height and flip."""
    batch, size = 4000, 16
    ramp = (torch.arange(size) + 0.5) / size  # pixel centres in (0, 1)
    images = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), torch.zeros(size, size)])
    scale, ratio = (0.2, 1.0), (3 / 4, 4 / 3)
    out = random_resized_crop_flip(images.expand(batch, -1, -1, -1), gen(0), scale=scale, ratio=ratio)
    # Bilinear interpolation of a ramp is exact away from the outer half pixel (where the border is
    # clamped), so neighbouring interior output pixels differ by box_size / size.
    width_signed = (out[:, 0, 0, -2] - out[:, 0, 0, 1]) * size / (size - 3)
    height = (out[:, 1, -2, 0] - out[:, 1, 1, 0]) * size / (size - 3)
    width = width_signed.abs()
    tol = 1e-4
    assert (width * height >= scale[0] - tol).all() and (width * height <= scale[1] + tol).all()
    assert (width / height >= ratio[0] - tol).all() and (width / height <= ratio[1] + tol).all()
    flipped = (width_signed < 0).float().mean().item()
    assert abs(flipped - 0.5) < 4 * math.sqrt(0.25 / batch)
    # Boxes stay inside the image: sampled coordinates never leave [0, 1].
    assert out[:, :2].min() >= 0.5 / size - tol and out[:, :2].max() <= 1 - 0.5 / size + tol


def test_adjust_hue_matches_torchvision_per_image():
    images = torch.rand(32, 3, 8, 8, generator=gen(0))
    images[:4] = images[:4, :1]  # grey images: hue is undefined and must stay grey
    shift = torch.rand(32, generator=gen(1)) - 0.5
    expected = torch.stack([TF.adjust_hue(x, s.item()) for x, s in zip(images, shift, strict=True)])
    torch.testing.assert_close(adjust_hue(images, shift), expected, atol=1e-5, rtol=0)


def test_apply_color_jitter_matches_torchvision_ops_in_the_given_order():
    batch = 24
    images = torch.rand(batch, 3, 8, 8, generator=gen(0))
    factors = torch.stack(
        [
            0.5 + torch.rand(batch, generator=gen(1)),  # brightness
            0.5 + torch.rand(batch, generator=gen(2)),  # contrast
            0.5 + torch.rand(batch, generator=gen(3)),  # saturation
            0.2 * torch.rand(batch, generator=gen(4)) - 0.1,  # hue
        ],
        dim=1,
    )
    order = torch.rand(batch, 4, generator=gen(5)).argsort(dim=1)
    ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
    expected = []
    for image, factor, perm in zip(images, factors, order, strict=True):
        for op in perm.tolist():
            image = ops[op](image, factor[op].item())
        expected.append(image)
    torch.testing.assert_close(apply_color_jitter(images, factors, order), torch.stack(expected), atol=1e-5, rtol=0)


def test_color_jitter_skips_images_exactly_and_factors_stay_in_range():
    images = torch.rand(512, 3, 4, 4, generator=gen(0)) * 0.5 + 0.2  # 0.7 * 1.4 < 1: never clamped
    assert torch.equal(color_jitter(images, gen(1), p=0.0), images)
    # Brightness only: every image is scaled by one factor in [0.6, 1.4], about 80 % of them not by 1.
    out = color_jitter(images, gen(1), brightness=0.4, contrast=0, saturation=0, hue=0, p=0.8)
    ratio = out / images
    per_image = ratio.flatten(1)
    torch.testing.assert_close(per_image, per_image[:, :1].expand_as(per_image))
    assert per_image.min() >= 0.6 - 1e-6 and per_image.max() <= 1.4 + 1e-6
    changed = (per_image[:, 0] != 1).float().mean().item()
    assert abs(changed - 0.8) < 4 * math.sqrt(0.16 / 512)
    with pytest.raises(ValueError, match="hue"):
        color_jitter(images, gen(0), hue=0.6)


def test_random_grayscale_equalises_channels_with_probability_p():
    images = torch.rand(1000, 3, 4, 4, generator=gen(0))
    assert torch.equal(random_grayscale(images, gen(1), p=0.0), images)
    grey = random_grayscale(images, gen(1), p=1.0)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(grey, TF.rgb_to_grayscale(images, num_output_channels=3), atol=1e-6, rtol=0)
    some = random_grayscale(images, gen(1), p=0.2)
    converted = (some[:, 0] == some[:, 1]).flatten(1).all(dim=1).float().mean().item()
    assert abs(converted - 0.2) < 4 * math.sqrt(0.16 / 1000)


def test_simclr_views_are_valid_images_and_differ_between_views():
    images = random_images(32, size=16)
    generator = gen(0)
    view1, view2 = simclr_augment(images, generator), simclr_augment(images, generator)
    assert view1.dtype == torch.uint8 and view1.shape == images.shape
    differ = (view1 != view2).flatten(1).any(dim=1)
    assert differ.all()  # two draws from one generator: two different views of every image


def test_normalize_matches_the_formula_and_standardises_cifar_statistics():
    images = random_images(4)
    mean, std = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(normalize(images, CIFAR10_MEAN, CIFAR10_STD), (images / 255 - mean) / std)
    with pytest.raises(ValueError, match="uint8"):
        normalize(images.float(), CIFAR10_MEAN, CIFAR10_STD)
