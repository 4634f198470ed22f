"""The test environment itself: torch and torchvision must work together (their ops are compiled
against one torch; a mismatched pair imports but fails on the first op, e.g. `torchvision::nms`)."""

import torch
import torchvision


def test_torchvision_ops_run_beside_this_torch() -> None:
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = torchvision.ops.nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
