"""Batched image augmentation on the training device: crop + flip, and the SimCLR pipeline.

Every function takes a whole uint8 batch (B, 3, H, W) that already lives on the device and draws all of
its randomness from an explicit `torch.Generator` on that same device, so a batch depends only on
(images, generator state) and a resumed run sees exactly the batches it would have seen. There is no
Python loop over images: per-image parameters are drawn as (B,) tensors and applied with index
arithmetic, `torch.where`, one `F.grid_sample` and per-image colour factors.

- `random_crop_flip`: pad-and-crop plus horizontal flip, the standard CIFAR augmentation (He et al. 2016),
  done as one gather in the style of airbench (Jordan 2024). The ViT baseline and "weak" SimCLR use it.
- `simclr_augment`: the SimCLR CIFAR-10 pipeline of Chen et al. 2020 ("A Simple Framework for Contrastive
  Learning of Visual Representations", Appendix A and B.9): random resized crop, horizontal flip, colour
  jitter of strength 0.5 with probability 0.8, random grayscale with probability 0.2, no blur.

The colour ops match torchvision's functional ops image by image (brightness, contrast and saturation
as blends, hue as an HSV rotation, a random op order, clamping after each op; the tests compare them).
Two deliberate differences from the torchvision/PIL pipeline: a crop is a continuous box resampled
bilinearly by `grid_sample` rather than an integer pixel box, and images stay float between the ops and
are rounded to uint8 once at the end rather than after every op.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)  # per-channel mean of the 50k training images, in [0, 1]
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # per-channel std of the training pixels (not of image means)

_GRAY = (0.2989, 0.587, 0.114)  # ITU-R 601 luma weights, as in torchvision's rgb_to_grayscale


def _check_images(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"expected uint8 images of shape (B, 3, H, W), got {images.dtype} {tuple(images.shape)}")


@functools.cache
def _constant(values: tuple[float, ...], device: torch.device) -> torch.Tensor:
    """A small constant tensor, made once per device: a fresh host-to-GPU copy would sync every batch."""
    with torch.inference_mode(False):  # a normal tensor even if first made during inference
        return torch.tensor(values, device=device)


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform samples in [low, high) on the generator's device."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=generator.device)


def _bernoulli(size: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """(size,) bool mask, each entry True with probability p."""
    return torch.rand(size, generator=generator, device=generator.device) < p


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Quantise float images in [0, 1] to uint8, rounding to the nearest level as PIL does."""
    return (images * 255).round_().clamp_(0, 255).to(torch.uint8)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """Convert uint8 images to float and standardise each channel.

    Args:
        images: (B, 3, H, W) uint8.
        mean, std: per-channel statistics of pixels scaled to [0, 1], e.g. `CIFAR10_MEAN`, `CIFAR10_STD`.

    Returns:
        (B, 3, H, W) float32 with roughly zero mean and unit variance per channel.
    """
    _check_images(images)
    mean_t = _constant(tuple(mean), images.device).view(1, -1, 1, 1)
    std_t = _constant(tuple(std), images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - mean_t) / std_t


# ---------------------------------------------------------------------------------------------------
# Pad-and-crop + flip (the "weak" augmentation)
# ---------------------------------------------------------------------------------------------------


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Map indices in [-size + 1, 2 * size - 2] into [0, size) by mirroring at the borders (no edge repeat)."""
    index = index.abs()  # -1 -> 1, -2 -> 2: mirror at the left/top edge
    return torch.where(index >= size, 2 * (size - 1) - index, index)


def random_crop_flip(
    images: torch.Tensor, generator: torch.Generator, padding: int = 4, padding_mode: str = "reflect"
) -> torch.Tensor:
    """Random `padding`-pixel translation (pad then crop back to H x W) and random horizontal flip.

    Instead of materialising a padded copy, each output pixel computes the input pixel it comes from:
    row `i` of image `b` reads row `i + dy[b] - padding`, reflected or zeroed outside the image, and
    column `j` reads `j + dx[b] - padding`, mirrored first when the image is flipped. One gather then
    builds the whole batch.

    Args:
        images: (B, 3, H, W) uint8 on any device.
        generator: source of all randomness, on the same device as `images`.
        padding: maximum shift in pixels (4 for CIFAR); must be smaller than H and W for reflection.
        padding_mode: "reflect" (airbench, mirror without repeating the edge) or "zeros" (torchvision default).

    Returns:
        (B, 3, H, W) uint8: each image shifted by (dy, dx) in [-padding, padding]^2, flipped with p = 0.5.
    """
    _check_images(images)
    if padding_mode not in ("reflect", "zeros"):
        raise ValueError(f"padding_mode must be 'reflect' or 'zeros', got {padding_mode!r}")
    B, _, H, W = images.shape
    if not 0 <= padding < min(H, W):
        raise ValueError(f"padding must be in [0, {min(H, W)}) for {H}x{W} images, got {padding}")
    device = images.device
    offsets = torch.randint(0, 2 * padding + 1, (B, 2), generator=generator, device=device)  # (B, 2): dy, dx
    flip = _bernoulli(B, 0.5, generator)  # (B,)
    rows = torch.arange(H, device=device) + offsets[:, :1] - padding  # (B, H) source row of each output row
    cols = torch.arange(W, device=device) + offsets[:, 1:] - padding  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)  # flipping the output = reading columns backwards
    if padding_mode == "reflect":
        inside = None
        rows, cols = _reflect(rows, H), _reflect(cols, W)
    else:
        inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]  # (B, H, W)
        rows, cols = rows.clamp(0, H - 1), cols.clamp(0, W - 1)
    batch = torch.arange(B, device=device)[:, None, None]
    # Advanced indices separated by a slice go first: (B, H, W) index grids -> (B, H, W, 3).
    out = images[batch, :, rows[:, :, None], cols[:, None, :]]
    if inside is not None:
        out = torch.where(inside[..., None], out, 0)
    return out.permute(0, 3, 1, 2).contiguous()  # (B, 3, H, W)


# ---------------------------------------------------------------------------------------------------
# SimCLR pipeline (the "strong" augmentation)
# ---------------------------------------------------------------------------------------------------


def random_resized_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip_p: float = 0.5,
    attempts: int = 10,
) -> torch.Tensor:
    """Crop a random box of random area and aspect ratio, resize it back to H x W, flip with `flip_p`.

    Follows torchvision's `RandomResizedCrop` sampling: area fraction ~ U(scale), log aspect ratio
    ~ U(log ratio); of `attempts` candidates per image the first that fits is used, and the whole image
    when none does. The box and the flip become one affine map per image, and a single `grid_sample`
    resamples the batch bilinearly.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: source of all randomness, on the images' device.
        scale: range of the crop area as a fraction of the image area.
        ratio: range of the crop aspect ratio width / height.
        flip_p: probability of a horizontal flip.
        attempts: candidate boxes drawn per image (a fixed number, so the generator advances the same
            amount whatever the outcome).

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {scale}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < low <= high, got {ratio}")
    B, _, H, W = images.shape
    area = _uniform((B, attempts), *scale, generator)  # fraction of H * W
    aspect = torch.exp(_uniform((B, attempts), math.log(ratio[0]), math.log(ratio[1]), generator))
    width = torch.sqrt(area * aspect * H / W)  # (B, attempts) box width as a fraction of W
    height = torch.sqrt(area / aspect * W / H)  # box height as a fraction of H
    fits = (width <= 1) & (height <= 1)
    first = fits.int().argmax(dim=1, keepdim=True)  # index of the first fitting candidate (0 if none)
    any_fits = fits.any(dim=1)
    width = torch.where(any_fits, width.gather(1, first).squeeze(1), 1.0)  # (B,)
    height = torch.where(any_fits, height.gather(1, first).squeeze(1), 1.0)
    # Box centre in grid_sample's [-1, 1] coordinates, uniform over the positions that keep it inside.
    centre = (2 * _uniform((B, 2), 0.0, 1.0, generator) - 1) * torch.stack([1 - width, 1 - height], dim=1)
    sign = torch.where(_bernoulli(B, flip_p, generator), -1.0, 1.0)  # a flip mirrors the x axis of the grid
    theta = torch.zeros(B, 2, 3, device=images.device)  # (B, 2, 3): input coordinate = theta @ (x, y, 1)
    theta[:, 0, 0] = width * sign
    theta[:, 1, 1] = height
    theta[:, :, 2] = centre
    grid = F.affine_grid(theta, [B, 3, H, W], align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB -> (B, 1, H, W) luma with torchvision's ITU-R 601 weights."""
    r, g, b = images.unbind(1)
    return (_GRAY[0] * r + _GRAY[1] * g + _GRAY[2] * b).unsqueeze(1)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image by `shift` turns in HSV space, as torchvision's `adjust_hue`.

    Value v = max(r, g, b) and chroma c = v - min(r, g, b) are kept; only the hue angle moves.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        shift: (B,) hue offsets in turns, in [-0.5, 0.5]; 0 leaves an image unchanged up to rounding.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    r, g, b = images.unbind(1)  # (B, H, W) each
    value, _ = images.max(dim=1)
    chroma = value - images.min(dim=1).values
    safe_chroma = torch.where(chroma > 0, chroma, 1.0)  # grey pixels have no hue; avoid 0 / 0
    # Hue in sixths of a turn: which channel is largest picks the sector, the other two the position.
    hue = torch.where(
        value == r,
        (g - b) / safe_chroma,
        torch.where(value == g, 2 + (b - r) / safe_chroma, 4 + (r - g) / safe_chroma),
    )
    hue = (hue / 6 + shift.view(-1, 1, 1)) % 1  # (B, H, W) in turns
    # HSV -> RGB without branches: channel n is v - c * clamp(min(k, 4 - k), 0, 1), k = (n + 6 h) mod 6.
    n = _constant((5.0, 3.0, 1.0), images.device).view(1, 3, 1, 1)  # R, G, B
    k = (n + 6 * hue.unsqueeze(1)) % 6  # (B, 3, H, W)
    return value.unsqueeze(1) - chroma.unsqueeze(1) * torch.minimum(k, 4 - k).clamp(0, 1)


def apply_color_jitter(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """The deterministic half of `color_jitter`: apply given jitter factors in a given order per image.

    Brightness, contrast and saturation are blends x -> a x + (1 - a) y with torchvision's targets
    y = 0, the image's mean luma, and the pixel's luma; each is clamped to [0, 1] as torchvision does.
    All three fit one expression, x' = alpha x + beta luma(x) + gamma mean(luma(x)), so an op slot costs
    the same whichever op an image draws.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        factors: (B, 4) brightness, contrast and saturation factors (1 = unchanged) and hue shift in
            turns (0 = unchanged).
        order: (B, 4) a permutation of (0, 1, 2, 3) per image: op order[:, i] is applied i-th.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    B = images.shape[0]
    brightness, contrast, saturation, hue = factors.unbind(1)  # (B,) each
    zeros = torch.zeros_like(brightness)
    scales = torch.stack([brightness, contrast, saturation, torch.ones_like(brightness)], dim=1)  # (B, 4)
    for slot in range(4):
        op = order[:, slot]  # (B,) the op each image applies at this position
        alpha = scales.gather(1, op[:, None])  # (B, 1) how much of the image each blend keeps; 1 for hue
        beta = torch.where(op == 2, 1 - saturation, zeros)  # saturation blends towards the pixel's luma
        gamma = torch.where(op == 1, 1 - contrast, zeros)  # contrast blends towards the image's mean luma
        y = luma(images)  # (B, 1, H, W)
        mean_y = y.mean(dim=(1, 2, 3))  # (B,)
        blended = alpha.view(B, 1, 1, 1) * images + beta.view(B, 1, 1, 1) * y + (gamma * mean_y).view(B, 1, 1, 1)
        images = blended.clamp(0, 1)
        # A zero hue shift is skipped rather than applied: the HSV round trip is exact only up to rounding.
        images = torch.where(((op == 3) & (hue != 0)).view(B, 1, 1, 1), adjust_hue(images, hue), images)
    return images


def color_jitter(
    images: torch.Tensor,
    generator: torch.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
    p: float = 0.8,
) -> torch.Tensor:
    """Randomly change brightness, contrast, saturation and hue, in a random order per image.

    Factors are drawn as in torchvision's `ColorJitter`: brightness, contrast and saturation uniformly
    in [1 - strength, 1 + strength], the hue shift uniformly in [-hue, hue] turns. An image is jittered
    with probability `p`; the others get identity factors, which leave them exactly unchanged.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: source of all randomness, on the images' device.
        brightness, contrast, saturation: strengths in [0, 1].
        hue: strength in [0, 0.5] turns.
        p: probability that an image is jittered at all.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    strengths = (brightness, contrast, saturation)
    if not all(0 <= x <= 1 for x in strengths):
        raise ValueError(f"brightness, contrast and saturation must be in [0, 1], got {strengths}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue must be in [0, 0.5] turns, got {hue}")
    B, device = images.shape[0], images.device
    apply = _bernoulli(B, p, generator)
    strength = _constant((brightness, contrast, saturation, hue), device)
    offsets = torch.where(apply[:, None], _uniform((B, 4), -1.0, 1.0, generator) * strength, 0.0)  # (B, 4)
    factors = offsets + _constant((1.0, 1.0, 1.0, 0.0), device)  # hue is an offset, not a factor
    order = torch.rand(B, 4, generator=generator, device=device).argsort(dim=1)  # (B, 4) a permutation each
    return apply_color_jitter(images, factors, order)


def random_grayscale(images: torch.Tensor, generator: torch.Generator, p: float = 0.2) -> torch.Tensor:
    """Replace an image by its luma in all three channels with probability `p`.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: source of all randomness, on the images' device.

    Returns:
        (B, 3, H, W) float; converted images have three identical channels.
    """
    mask = _bernoulli(images.shape[0], p, generator).view(-1, 1, 1, 1)
    return torch.where(mask, luma(images).expand_as(images), images)


def simclr_augment(
    images: torch.Tensor,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    jitter_strength: float = 0.5,
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
) -> torch.Tensor:
    """One SimCLR view of each image: resized crop + flip, colour jitter, random grayscale.

    Args:
        images: (B, 3, H, W) uint8 on any device.
        generator: source of all randomness, on the same device as `images`.
        scale: crop area range (the paper uses (0.08, 1) on CIFAR-10 too; (0.2, 1) is a common
            gentler choice for 32 x 32 images).
        jitter_strength: s in the paper: brightness, contrast, saturation 0.8 s and hue 0.2 s.
        jitter_p: probability of colour jitter (0.8 in the paper).
        grayscale_p: probability of grayscale (0.2 in the paper).

    Returns:
        (B, 3, H, W) uint8, quantised like the PIL pipeline so both views share `normalize`.
    """
    _check_images(images)
    x = images.float() / 255
    x = random_resized_crop_flip(x, generator, scale=scale)
    s = jitter_strength
    x = color_jitter(x, generator, brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s, p=jitter_p)
    x = random_grayscale(x, generator, p=grayscale_p)
    return to_uint8(x)
