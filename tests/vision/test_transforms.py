"""Transforms: closed forms (ToTensor scaling, Normalize), crop/flip geometry, Resize against
hand-computed nearest and bilinear values, seeding, and the three input kinds."""

import numpy as np
import pytest

import dtorch
from dtorch.vision import transforms as T


def test_to_tensor_hwc_uint8_to_chw_float():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    t = T.ToTensor()(img)
    assert t.shape == (3, 2, 3) and t.dtype == dtorch.float32
    np.testing.assert_allclose(t.numpy(), img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    gray = T.ToTensor()(np.full((4, 5), 255, np.uint8))
    assert gray.shape == (1, 4, 5) and gray.numpy().max() == 1.0
    f = T.ToTensor()(np.ones((2, 2, 1), np.float64) * 7)       # non-uint8: values kept
    assert f.dtype == dtorch.float64 and f.numpy().max() == 7.0
    with pytest.raises(TypeError, match="pic should be PIL Image or ndarray"):
        T.ToTensor()(dtorch.zeros(3, 2, 2))
    with pytest.raises(ValueError, match="pic should be 2/3 dimensional"):
        T.ToTensor()(np.zeros(3, np.uint8))


def test_to_tensor_accepts_pil_images():
    Image = pytest.importorskip("PIL.Image")
    arr = np.random.default_rng(0).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    t = T.ToTensor()(Image.fromarray(arr))
    np.testing.assert_allclose(t.numpy(), arr.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    assert T.ToTensor()(Image.fromarray(arr[:, :, 0])).shape == (1, 5, 4)


def test_normalize():
    x = dtorch.rand(2, 3, 4, 4)
    out = T.Normalize((0.1, 0.2, 0.3), (0.5, 1.0, 2.0))(x)
    expect = (x.numpy() - np.array([0.1, 0.2, 0.3], np.float32)[:, None, None]) / \
        np.array([0.5, 1.0, 2.0], np.float32)[:, None, None]
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-6)
    assert out.dtype == dtorch.float32
    y = x.clone()
    assert T.Normalize([0.5] * 3, [0.5] * 3, inplace=True)(y) is y
    np.testing.assert_allclose(y.numpy(), (x.numpy() - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match="std evaluated to zero"):
        T.Normalize((0.0,), (0.0,))(dtorch.rand(1, 2, 2))
    with pytest.raises(TypeError, match="Input tensor should be a float tensor"):
        T.Normalize((0.0,), (1.0,))(dtorch.zeros(1, 2, 2, dtype=dtorch.uint8))


def test_random_crop_with_padding_is_a_window_of_the_padded_image():
    img = np.arange(1, 17, dtype=np.uint8).reshape(4, 4)
    padded = np.pad(img, 2)
    dtorch.manual_seed(0)
    seen = set()
    for _ in range(40):
        out = T.RandomCrop(4, padding=2)(img)
        assert out.shape == (4, 4)
        hits = [(i, j) for i in range(5) for j in range(5)
                if np.array_equal(padded[i:i + 4, j:j + 4], out)]
        assert hits
        seen.add(hits[0])
    assert len(seen) > 5                              # it really moves around
    t = T.RandomCrop((2, 3))(dtorch.arange(48.0).reshape(3, 4, 4))
    assert t.shape == (3, 2, 3)
    assert T.RandomCrop(6, pad_if_needed=True, padding_mode="edge")(img).shape == (6, 6)
    with pytest.raises(ValueError, match="Required crop size"):
        T.RandomCrop(5)(img)


def test_random_crop_is_reproducible_with_manual_seed():
    img = np.random.default_rng(1).integers(0, 255, (8, 8, 3), dtype=np.uint8)
    dtorch.manual_seed(42)
    a = [T.RandomCrop(5, padding=1)(img) for _ in range(3)]
    dtorch.manual_seed(42)
    b = [T.RandomCrop(5, padding=1)(img) for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_random_horizontal_flip():
    img = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(img), img[:, ::-1])
    assert T.RandomHorizontalFlip(p=0.0)(img) is img
    t = dtorch.arange(12.0).reshape(1, 2, 2, 3)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(t).numpy(), t.numpy()[..., ::-1])
    dtorch.manual_seed(0)
    flips = sum(T.RandomHorizontalFlip()(img) is not img for _ in range(400))
    assert 150 < flips < 250


def test_resize_nearest_and_bilinear_closed_forms():
    img = np.array([[0, 100], [200, 50]], dtype=np.uint8)
    up = T.Resize(4, interpolation=T.InterpolationMode.NEAREST)(img)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(img, 2, 0), 2, 1))
    # bilinear x2 upsampling (align_corners=False): interior = 3/4, 1/4 mixes; edges clamp
    row = T.Resize((1, 4), interpolation="bilinear")(dtorch.tensor([[[0.0, 4.0]]]))
    np.testing.assert_allclose(row.numpy().ravel(), [0.0, 1.0, 3.0, 4.0])
    # downscaling by 2: plain bilinear averages pairs; antialias widens the triangle to 2
    # pixels each side, truncated and renormalised at the border: (0*.75 + 1*.75 + 2*.25) / 1.75
    x = dtorch.arange(8.0).reshape(1, 1, 8)
    np.testing.assert_allclose(T.Resize((1, 4), antialias=False)(x).numpy().ravel(),
                               [0.5, 2.5, 4.5, 6.5])
    np.testing.assert_allclose(T.Resize((1, 4))(x).numpy().ravel(),
                               [1.25 / 1.75, 2.5, 4.5, 11.0 / 1.75], rtol=1e-6)
    # by 4, a spike at pixel 3: weights 1 - |d| / 4 over centres 0.5..5.5 (sum 3.5) for output
    # 0 (centre 2), 2.5..7.5 for output 1 (centre 6); plain bilinear mixes pixels 1, 2 and
    # 5, 6 only, and misses the spike
    x = dtorch.tensor([[[0.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0]]])
    np.testing.assert_allclose(T.Resize((1, 2))(x).numpy().ravel(),
                               [8 * 0.625 / 3.5, 8 * 0.375 / 3.5], rtol=1e-6)
    np.testing.assert_allclose(T.Resize((1, 2), antialias=False)(x).numpy().ravel(),
                               [0.0, 0.0])


def test_resize_int_matches_the_smaller_edge_and_keeps_kind():
    img = np.zeros((10, 20, 3), np.uint8)
    assert T.Resize(5)(img).shape == (5, 10, 3)
    assert T.Resize(5)(dtorch.zeros(3, 20, 10)).shape == (3, 10, 5)
    Image = pytest.importorskip("PIL.Image")
    out = T.Resize((4, 6))(Image.fromarray(img))
    assert out.size == (6, 4)


def test_compose_and_lambda():
    pipe = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)])
    assert pipe(np.full((2, 2), 255, np.uint8)).numpy().max() == 2.0
    assert "ToTensor" in repr(pipe)
    with pytest.raises(TypeError, match="Argument lambd should be callable"):
        T.Lambda(3)
