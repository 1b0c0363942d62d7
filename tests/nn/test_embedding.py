"""Embedding and EmbeddingBag: lookups, padding_idx, max_norm, frequency scaling, bags."""

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F


def _w(seed=0):
    return dtorch.tensor(np.random.default_rng(seed).standard_normal((10, 3)),
                         requires_grad=True)


def test_embedding_lookup_and_grad_accumulates_duplicates():
    w = _w()
    idx = dtorch.tensor([[1, 2, 2], [9, 1, 1]])
    y = F.embedding(idx, w)
    np.testing.assert_array_equal(y.detach().numpy(), w.detach().numpy()[idx.numpy()])
    y.sum().backward()
    counts = np.bincount(idx.numpy().ravel(), minlength=10)
    np.testing.assert_array_equal(w.grad.numpy(), np.repeat(counts[:, None], 3, 1))


def test_padding_idx_and_scale_grad_by_freq():
    emb = nn.Embedding(10, 3, padding_idx=2)
    assert (emb.weight.detach().numpy()[2] == 0).all()
    emb(dtorch.tensor([2, 2, 3])).sum().backward()
    assert (emb.weight.grad.numpy()[2] == 0).all() and (emb.weight.grad.numpy()[3] == 1).all()
    w = _w()
    F.embedding(dtorch.tensor([1, 1, 1, 4]), w, scale_grad_by_freq=True).sum().backward()
    np.testing.assert_allclose(w.grad.numpy()[[1, 4]], 1.0)
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4


def test_max_norm_renormalizes_rows_in_place():
    w = dtorch.tensor(np.full((4, 2), 3.0))
    y = F.embedding(dtorch.tensor([0, 2]), w, max_norm=1.0)
    norms = np.linalg.norm(w.numpy(), axis=1)
    np.testing.assert_allclose(norms[[0, 2]], 1.0, rtol=1e-6)
    np.testing.assert_allclose(norms[[1, 3]], np.sqrt(18))
    np.testing.assert_allclose(np.linalg.norm(y.numpy(), axis=1), 1.0, rtol=1e-6)


def test_from_pretrained_and_repr():
    table = dtorch.arange(6.0).reshape(3, 2)
    emb = nn.Embedding.from_pretrained(table)
    assert not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(dtorch.tensor([2])).numpy(), [[4.0, 5.0]])
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    with pytest.raises(IndexError, match="index out of range"):
        emb(dtorch.tensor([3]))


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_manual(mode):
    w = _w(1)
    wn = w.detach().numpy()
    flat = [1, 2, 3, 2, 2, 9, 4]
    offsets = [0, 2, 2, 5]
    y = F.embedding_bag(dtorch.tensor(flat), w, dtorch.tensor(offsets), mode=mode)
    bags = [flat[0:2], [], flat[2:5], flat[5:]]
    red = {"sum": np.sum, "mean": np.mean, "max": np.max}[mode]
    ref = np.stack([red(wn[b], 0) if b else np.zeros(3) for b in bags])
    np.testing.assert_allclose(y.detach().numpy(), ref, atol=1e-12)
    y.sum().backward()
    assert w.grad is not None
    y2 = nn.EmbeddingBag.from_pretrained(w.detach(), mode=mode)(
        dtorch.tensor([[1, 2], [3, 3]]))
    ref2 = np.stack([red(wn[[1, 2]], 0), red(wn[[3, 3]], 0)])
    np.testing.assert_allclose(y2.numpy(), ref2, atol=1e-12)


def test_embedding_bag_per_sample_weights_and_padding():
    w = _w(2)
    wn = w.detach().numpy()
    y = F.embedding_bag(dtorch.tensor([[1, 2], [3, 0]]), w, mode="sum",
                        per_sample_weights=dtorch.tensor([[1.0, 2.0], [0.5, 3.0]]),
                        padding_idx=0)
    np.testing.assert_allclose(y.detach().numpy(), [wn[1] + 2 * wn[2], 0.5 * wn[3]],
                               atol=1e-12)
