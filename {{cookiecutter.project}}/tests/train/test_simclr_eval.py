"""kNN monitor and linear probe: toy problems with known answers and a naive voting reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from {{ cookiecutter.package }}.train.simclr_eval import extract_features, knn_accuracy, knn_predict, linear_probe


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def clustered(n_per_class: int, num_classes: int, dim: int, spread: float, seed: int):
    """Features around one random direction per class: (n * C, D) features and (n * C,) labels."""
    centres = torch.randn(num_classes, dim, generator=gen(seed))
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    features = centres[labels] + spread * torch.randn(len(labels), dim, generator=gen(seed + 1))
    return features, labels


def knn_naive(bank, bank_labels, queries, num_classes, k, temperature):
    """One query at a time, as written in Wu et al. 2018: cosine, top-k, exp(sim / T) votes per class."""
    predictions = []
    for query in queries:
        sims = [torch.nn.functional.cosine_similarity(query, b, dim=0).item() for b in bank]
        neighbours = sorted(range(len(bank)), key=lambda i: -sims[i])[:k]
        votes = [0.0] * num_classes
        for i in neighbours:
            votes[int(bank_labels[i])] += float(torch.tensor(sims[i] / temperature).exp())
        predictions.append(max(range(num_classes), key=lambda c: votes[c]))
    return torch.tensor(predictions)


def test_knn_is_perfect_on_separated_clusters():
    train, train_labels = clustered(50, 5, 16, spread=0.1, seed=0)
    test, test_labels = clustered(20, 5, 16, spread=0.1, seed=0)  # same centres, fresh noise below
    test = test + 0.05 * torch.randn(test.shape, generator=gen(7))
    assert knn_accuracy(train, train_labels, test, test_labels, num_classes=5, k=20) == 1.0


def test_knn_is_at_chance_on_random_labels():
    features = torch.randn(2000, 16, generator=gen(0))
    labels = torch.randint(0, 10, (2000,), generator=gen(1))
    accuracy = knn_accuracy(features[:1000], labels[:1000], features[1000:], labels[1000:], num_classes=10)
    assert 0.05 < accuracy < 0.15  # chance is 0.1; 1,000 test points give a std of about 0.01


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (5, 0.1), (7, 1.0), (40, 0.05)])
def test_knn_weighted_voting_matches_naive_loop(k, temperature):
    bank = torch.randn(40, 6, generator=gen(k))
    bank_labels = torch.randint(0, 4, (40,), generator=gen(k + 1))
    queries = torch.randn(25, 6, generator=gen(k + 2))
    fast = knn_predict(bank, bank_labels, queries, num_classes=4, k=k, temperature=temperature, chunk_size=7)
    assert torch.equal(fast, knn_naive(bank, bank_labels, queries, 4, k, temperature))


def test_knn_weights_favour_close_neighbours():
    """One very close neighbour of class 0 outvotes two far ones of class 1 at a low temperature."""
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(bank, labels, query, num_classes=2, k=3, temperature=0.1).item() == 0
    assert knn_predict(bank, labels, query, num_classes=2, k=3, temperature=100.0).item() == 1  # ~ majority


def test_knn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), torch.randn(1, 2), 2, k=0)


def test_linear_probe_separates_linearly_separable_data_and_is_deterministic():
    # Labels from a fixed linear map: separable by construction, but not by nearest centroid alone.
    x = torch.randn(2200, 10, generator=gen(0))
    labels = (x @ torch.randn(10, 3, generator=gen(1))).argmax(dim=1)
    first = linear_probe(x[:2000], labels[:2000], x[2000:], labels[2000:], num_classes=3, steps=100)
    again = linear_probe(x[:2000], labels[:2000], x[2000:], labels[2000:], num_classes=3, steps=100)
    assert first >= 0.97
    assert first == again


def test_linear_probe_is_at_chance_on_random_labels():
    x = torch.randn(1200, 8, generator=gen(0))
    labels = torch.randint(0, 4, (1200,), generator=gen(1))
    accuracy = linear_probe(x[:600], labels[:600], x[600:], labels[600:], num_classes=4, steps=50)
    assert 0.17 < accuracy < 0.33  # chance 0.25; std about 0.018 on 600 test points


def test_linear_probe_trains_under_no_grad_and_autocast():
    """The training loop calls finish() under autocast; the probe must still optimise in float32."""
    x = torch.randn(300, 5, generator=gen(0))
    labels = (x[:, 0] > 0).long()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        accuracy = linear_probe(x[:200], labels[:200], x[200:], labels[200:], num_classes=2, steps=20)
    assert accuracy >= 0.95


def test_extract_features_chunks_and_normalises():
    images = torch.randint(0, 256, (10, 3, 4, 4), dtype=torch.uint8, generator=gen(0))
    encoder = nn.Flatten()  # features = the normalised pixels themselves
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    features = extract_features(encoder, images, mean, std, batch_size=3)
    expected = ((images.float() / 255 - 0.5) / 0.25).flatten(1)
    torch.testing.assert_close(features, expected)
    assert not features.requires_grad


def test_knn_ignores_autocast():
    """In bf16, 5 of these 500 nearest neighbours change; the monitor must not depend on the precision."""
    bank = torch.randn(200, 32, generator=gen(0))
    labels = torch.randint(0, 5, (200,), generator=gen(1))
    queries = torch.randn(500, 32, generator=gen(2))
    expected = knn_predict(bank, labels, queries, num_classes=5, k=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(knn_predict(bank, labels, queries, num_classes=5, k=1), expected)
