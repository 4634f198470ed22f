"""pytest configuration: GPU tests skip without CUDA, every test runs single-threaded; helpers in helpers.py."""

from collections.abc import Iterator

import pytest
import torch


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """Tiny models run several times faster on one thread (no fork/join overhead) and results then
    don't depend on how many cores the test machine has."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
