"""The installed stack works together: torchvision's compiled ops match this torch, and the entry
points import. A mismatched torch/torchvision pair imports fine and fails on the first op."""

import importlib

import pytest
import torch
import torchvision


def test_torchvision_ops_run_beside_this_torch() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


@pytest.mark.parametrize("module", ["train.run", "compare", "reproduce", "env", "data.prepare"])
def test_entry_points_import(module: str) -> None:
    assert importlib.import_module(f"{{ cookiecutter.package }}.{module}")
