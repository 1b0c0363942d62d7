"""Losses: reference values (numbers from PyTorch 2.x, pasted), closed forms for cross entropy,
float64 gradient checks, stability at huge logits, legacy arguments, modules."""

import warnings

import numpy as np
import pytest

import dtorch
import dtorch.nn as nn
import dtorch.nn.functional as F
from dtorch.autograd import gradcheck


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not dtorch.cuda.is_available(), reason="needs CuPy and a GPU"))])
def device(request):
    """CPU, and CUDA where CuPy and a GPU are present."""
    return request.param

X = np.linspace(-2, 2, 12).reshape(3, 4)
Y = np.cos(np.arange(12.0)).reshape(3, 4)
P = ((np.sin(np.arange(12.0)) + 1) / 2 * 0.98 + 0.01).reshape(3, 4)
B = (np.arange(12) % 3 == 0).astype(float).reshape(3, 4)
S = np.where(B > 0, 1.0, -1.0)
MULTI = np.array([[3, 0, -1, 1], [1, 2, 3, -1], [-1, 0, 0, 0]])


def t(a, grad=False):
    return dtorch.tensor(a, dtype=dtorch.float64 if np.asarray(a).dtype.kind == "f" else None,
                         requires_grad=grad)


# name -> (fn(reduction, *differentiable inputs), differentiable input arrays)
CASES = {
    "l1_loss": (lambda r, x, y: F.l1_loss(x, y, reduction=r), (X, Y)),
    "mse_loss": (lambda r, x, y: F.mse_loss(x, y, reduction=r), (X, Y)),
    "smooth_l1_loss": (lambda r, x, y: F.smooth_l1_loss(x, y, reduction=r, beta=0.7), (X, Y)),
    "huber_loss": (lambda r, x, y: F.huber_loss(x, y, reduction=r, delta=0.7), (X, Y)),
    "binary_cross_entropy": (lambda r, p, b: F.binary_cross_entropy(
        p, b, weight=t([1.0, 2, 3, 4]), reduction=r), (P, B)),
    "binary_cross_entropy_with_logits": (lambda r, x, b: F.binary_cross_entropy_with_logits(
        x, b, pos_weight=t([1.0, 2, 3, 4]), reduction=r), (X, B)),
    "kl_div": (lambda r, lp, q: F.kl_div(lp, q, reduction=r), (np.log(P), P[::-1].copy())),
    "poisson_nll_loss": (lambda r, x, y: F.poisson_nll_loss(x, y, full=True, reduction=r),
                         (X, np.abs(Y) * 3)),
    "gaussian_nll_loss": (lambda r, x, y, v: F.gaussian_nll_loss(x, y, v, full=True,
                                                                 reduction=r), (X, Y, P)),
    "soft_margin_loss": (lambda r, x: F.soft_margin_loss(x, t(S), reduction=r), (X,)),
    "multilabel_soft_margin_loss": (lambda r, x, b: F.multilabel_soft_margin_loss(
        x, b, reduction=r), (X, B)),
    "hinge_embedding_loss": (lambda r, x: F.hinge_embedding_loss(x, t(S), margin=0.5,
                                                                 reduction=r), (X,)),
    "cosine_embedding_loss": (lambda r, a, b: F.cosine_embedding_loss(
        a, b, t([1.0, -1, 1]), margin=-0.2, reduction=r), (X, Y)),
    "margin_ranking_loss": (lambda r, a, b: F.margin_ranking_loss(a, b, t(S[0]), margin=0.1,
                                                                  reduction=r), (X[0], Y[0])),
    "triplet_margin_loss": (lambda r, a, p, n: F.triplet_margin_loss(a, p, n, margin=1.5, p=3,
                                                                     reduction=r), (X, Y, P)),
    "multi_margin_loss": (lambda r, x: F.multi_margin_loss(x, t(np.array([3, 0, 1])), p=2,
                                                           margin=0.8, reduction=r), (X,)),
    "multilabel_margin_loss": (lambda r, x: F.multilabel_margin_loss(x, t(MULTI),
                                                                     reduction=r), (X,)),
}

REFERENCE = {
    "l1_loss": ([3.0, 2.17666594223, 0.85658043618, 0.0809015875095, 0.108189075409,
                 0.465480367281, 0.778352104832, 0.208447708889, 1.0545909429, 2.18385753461,
                 2.47543516544, 1.99557430201], 1.28200626394, 15.3840751673),
    "mse_loss": ([9.0, 4.73787462407, 0.733730043647, 0.00654506686156, 0.0117048760379,
                  0.216671972324, 0.605831999097, 0.043450447341, 1.11216205685,
                  4.76923373148, 6.1277792583, 3.98231679485], 2.61227507257, 31.3473008709),
    "smooth_l1_loss": ([2.65, 1.82666594223, 0.50658043618, 0.00467504775826,
                        0.00836062574133, 0.154765694517, 0.428352104832, 0.031036033815,
                        0.7045909429, 1.83385753461, 2.12543516544, 1.64557430201],
                       0.993324485837, 11.91989383),
    "huber_loss": ([1.855, 1.27866615956, 0.354606305326, 0.00327253343078, 0.00585243801893,
                    0.108335986162, 0.299846473383, 0.0217252236705, 0.49321366003,
                    1.28370027423, 1.48780461581, 1.15190201141], 0.695327140086,
                   8.34392568103),
    "binary_cross_entropy": ([0.69314718056, 4.86814076192, 8.73173351179, 2.25445344273,
                              0.138304798419, 0.0611805051622, 3.03934332093, 6.90216668633,
                              4.18550904312, 0.707820231293, 0.797486434347,
                              0.0402207325121], 2.70162555409, 32.4195066491),
    "binary_cross_entropy_with_logits": ([2.12692801104, 0.177883982251, 0.246912233463,
                                          4.99050213163, 0.45715789925, 0.606364641789,
                                          1.81909392537, 1.0026124447, 1.24762553291,
                                          0.493824466927, 1.81424761861, 2.12692801104],
                                         1.42584007492, 17.110080899),
    "kl_div": ([0.667503193302, -0.184010605168, -0.32654289356, -0.0404301628948, 0.0, 0.0,
                0.0, 0.0, -0.338907897007, 0.239161700164, 1.32273042259, 2.29997417616],
               0.303289827799, 3.63947793359),
    "poisson_nll_loss": ([7.89941682678, 3.16947942493, 1.92745959123, 4.82909007391,
                          2.26442291691, 0.98847774651, 2.2905656933, 1.40284939572,
                          2.0852468106, 1.52857707835, 2.2044536146, 7.362501911],
                         3.16271175699, 37.9525410838),
    "gaussian_nll_loss": ([9.57236494292, 3.46966239019, 1.27893609732, 0.642881726022,
                           -0.0590777392111, 2.76373752194, 1.24666206452, 0.847316690264,
                           1.47594505064, 4.13917335467, 13.3170384799, 197.636927383],
                          19.6942973302, 236.331567962),
    "soft_margin_loss": ([2.12692801104, 0.177883982251, 0.246912233463, 1.24762553291,
                          0.45715789925, 0.606364641789, 0.606364641789, 1.0026124447,
                          1.24762553291, 0.246912233463, 1.81424761861, 2.12692801104],
                         0.992296898602, 11.9075627832),
    "multilabel_soft_margin_loss": ([0.949837439916, 0.668124906883, 1.35892834901],
                                    0.992296898602, 2.97689069581),
    "hinge_embedding_loss": ([-2.0, 2.13636363636, 1.77272727273, -0.909090909091,
                              1.04545454545, 0.681818181818, 0.181818181818, 0.0, 0.0,
                              1.27272727273, 0.0, 0.0], 0.348484848485, 4.18181818182),
    "cosine_embedding_loss": ([1.30793887075, 0.975008654459, 1.70506274402], 1.32933675641,
                              3.98801026923),
    "margin_ranking_loss": ([3.1, 0.0, 0.0, 0.0190984124905], 0.779774603123, 3.11909841249),
    "triplet_margin_loss": ([1.26874945454, 1.63482782265, 2.5494803253], 1.8176858675,
                            5.45305760249),
    "multi_margin_loss": ([0.0489256198347, 1.81553719008, 0.969256198347], 0.944573002755,
                          2.83371900826),
    "multilabel_margin_loss": ([1.0, 0.227272727273, 0.0], 0.409090909091, 1.22727272727),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_values(name):
    fn, arrays = CASES[name]
    none, mean, total = REFERENCE[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = {r: fn(r, *[t(a) for a in arrays]) for r in ("none", "mean", "sum")}
    np.testing.assert_allclose(out["none"].detach().numpy().reshape(-1), none, rtol=1e-9,
                               atol=1e-11)
    np.testing.assert_allclose(out["mean"].item(), mean, rtol=1e-9)
    np.testing.assert_allclose(out["sum"].item(), total, rtol=1e-9)
    assert out["mean"].ndim == 0 and out["sum"].ndim == 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(name):
    fn, arrays = CASES[name]
    inputs = [t(a, grad=True) for a in arrays]
    if name in ("binary_cross_entropy_with_logits", "multilabel_soft_margin_loss"):
        inputs[1] = t(P, grad=True)  # soft labels: the target gradient is exercised too
    if name == "hinge_embedding_loss":
        inputs[0] = t(X + 0.05, grad=True)  # move off the hinge at margin - x = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert gradcheck(lambda *a: fn("none", *a), tuple(inputs))
        assert gradcheck(lambda *a: fn("mean", *a), tuple(inputs))


# ----------------------------------------------------------------------------- cross entropy
def _ce_reference(x, y, w=None, ignore_index=-100, eps=0.0, reduction="mean"):
    """Cross entropy from its definition (class axis 1, any trailing dims)."""
    C = x.shape[1]
    xm = np.moveaxis(x, 1, -1).reshape(-1, C)
    yy = y.reshape(-1)
    logp = xm - xm.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    w = np.ones(C) if w is None else w
    valid = yy != ignore_index
    safe = np.where(valid, yy, 0)
    nll = -logp[np.arange(len(yy)), safe] * w[safe] * valid
    smooth = -(logp * w).sum(1) * valid
    loss = (1 - eps) * nll + eps / C * smooth
    if reduction == "mean":
        return loss.sum() / (w[safe] * valid).sum()
    if reduction == "sum":
        return loss.sum()
    return loss.reshape(y.shape)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True])
def test_cross_entropy_closed_form(reduction, eps, weighted, device):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)) * 3
    y = np.array([0, 3, -100, 2, 1])
    w = np.array([0.5, 1.0, 2.0, 3.0]) if weighted else None
    out = F.cross_entropy(t(x).to(device), t(y).to(device),
                          weight=None if w is None else t(w).to(device), reduction=reduction,
                          label_smoothing=eps)
    np.testing.assert_allclose(out.cpu().numpy(), _ce_reference(x, y, w, -100, eps, reduction),
                               rtol=1e-12)


def test_cross_entropy_nd_and_ignore_index():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 3, 4, 2))
    y = np.array([[[0, 1], [2, 7], [1, 1], [0, 2]], [[2, 2], [7, 0], [1, 0], [0, 1]]])
    w = np.array([1.0, 2.0, 0.5])
    for red in ("none", "mean", "sum"):
        out = F.cross_entropy(t(x), t(y), weight=t(w), ignore_index=7, reduction=red,
                              label_smoothing=0.1)
        np.testing.assert_allclose(out.numpy(), _ce_reference(x, y, w, 7, 0.1, red),
                                   rtol=1e-12)
    xs = t(x, grad=True)
    assert gradcheck(lambda a: F.cross_entropy(a, t(y), weight=t(w), ignore_index=7,
                                               label_smoothing=0.1), (xs,))
    assert gradcheck(lambda a: F.cross_entropy(a, t(y), ignore_index=7, reduction="none"),
                     (xs,))
    # ignored positions get exactly zero gradient
    F.cross_entropy(xs, t(y), ignore_index=7).backward()
    assert (xs.grad.numpy()[0, :, 1, 1] == 0).all() and (xs.grad.numpy()[1, :, 1, 0] == 0).all()


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    x = t(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), grad=True)
    F.cross_entropy(x, t(np.array([2, 0]))).backward()
    p = np.exp(x.detach().numpy())
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(x.grad.numpy(), (p - np.eye(3)[[2, 0]]) / 2, rtol=1e-12)


def test_cross_entropy_probability_targets():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5))
    q = rng.dirichlet(np.ones(5), size=4)
    w = rng.uniform(0.5, 2, size=5)
    logp = x - np.log(np.exp(x).sum(1, keepdims=True))
    qs = q * 0.8 + 0.2 / 5
    ref = -(logp * qs * w).sum(1)
    out = F.cross_entropy(t(x), t(q), weight=t(w), label_smoothing=0.2, reduction="none")
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-12)
    mean = F.cross_entropy(t(x), t(q), weight=t(w), label_smoothing=0.2)
    np.testing.assert_allclose(mean.item(), ref.mean(), rtol=1e-12)  # divides by N, not w
    assert gradcheck(lambda a, b: F.cross_entropy(a, b, weight=t(w)), (t(x, True), t(q, True)))


def test_cross_entropy_unbatched_and_seed_usage():
    x = t(np.array([1.0, 2.0, 0.5]))
    np.testing.assert_allclose(F.cross_entropy(x, t(np.array(1))).item(),
                               _ce_reference(x.numpy()[None], np.array([1])), rtol=1e-12)
    logits = dtorch.randn(64, 10, requires_grad=True)
    loss = nn.CrossEntropyLoss()(logits, dtorch.randint(0, 10, (64,)))
    loss.backward()
    assert loss.dtype == dtorch.float32 and logits.grad.shape == (64, 10)
    np.testing.assert_allclose(logits.grad.sum().item(), 0.0, atol=1e-6)


@pytest.mark.parametrize("v", [1000.0, -1000.0, 1e30])
def test_stable_on_huge_logits(v):
    x = t(np.array([[v, 0.0, -v]]), grad=True)
    loss = F.cross_entropy(x, t(np.array([2])), label_smoothing=0.1)
    loss.backward()
    assert np.isfinite(loss.item()) and np.isfinite(x.grad.numpy()).all()
    z = t(np.array([v, -v, v, -v]), grad=True)
    for fn in (F.binary_cross_entropy_with_logits, F.soft_margin_loss,
               F.multilabel_soft_margin_loss):
        target = t([0.0, 1.0, 1.0, 0.0]) if fn is not F.soft_margin_loss else t([-1.0, 1, 1, -1])
        out = fn(z, target, reduction="sum")
        (g,) = dtorch.autograd.grad(out, z)
        assert np.isfinite(out.item()) and np.isfinite(g.numpy()).all()


def test_bce_with_logits_at_1000_exact():
    z = t(np.array([1000.0, -1000.0, 1000.0, -1000.0]), grad=True)
    loss = F.binary_cross_entropy_with_logits(z, t([1.0, 0.0, 0.0, 1.0]), reduction="none")
    assert loss.tolist() == [0.0, 0.0, 1000.0, 1000.0]
    loss.sum().backward()
    assert z.grad.tolist() == [0.0, 0.0, 1.0, -1.0]


def test_bce_clamps_log_at_minus_100():
    p = t(np.array([0.0, 1.0, 0.5]), grad=True)
    loss = F.binary_cross_entropy(p, t([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [100.0, 100.0, np.log(2)])
    loss.sum().backward()
    assert np.isfinite(p.grad.numpy()).all()
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(t([1.5]), t([1.0]))


# ----------------------------------------------------------------------------- errors, legacy
def test_errors_name_the_values():
    x = dtorch.randn(3, 4)
    with pytest.raises(IndexError, match="Target 4 is out of bounds"):
        F.cross_entropy(x, dtorch.tensor([0, 4, 1]))
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target "
                                         r"batch_size \(2\)"):
        F.nll_loss(x, dtorch.tensor([0, 1]))
    with pytest.raises(ValueError, match="bogus is not a valid value for reduction"):
        F.mse_loss(x, x, reduction="bogus")
    with pytest.raises(ValueError, match="Target size"):
        F.binary_cross_entropy_with_logits(x, x[0])
    with pytest.raises(ValueError, match="var has negative"):
        F.gaussian_nll_loss(x, x, -dtorch.ones(3, 4))
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(x, x[0])


def test_legacy_size_average_and_reduce():
    x, y = dtorch.tensor([1.0, 2.0]), dtorch.tensor([0.0, 0.0])
    with pytest.warns(UserWarning, match="reduction='sum'"):
        crit = nn.MSELoss(size_average=False)  # the seed tutorial's form
    assert crit.reduction == "sum" and crit(x, y).item() == 5.0
    with pytest.warns(UserWarning):
        assert F.l1_loss(x, y, reduce=False).tolist() == [1.0, 2.0]


def test_nll_loss_matches_cross_entropy():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 5))
    y = np.array([0, 4, 2, -100, 1, 1])
    w = rng.uniform(0.5, 2, size=5)
    for red in ("none", "mean", "sum"):
        a = F.nll_loss(F.log_softmax(t(x), 1), t(y), weight=t(w), reduction=red)
        b = F.cross_entropy(t(x), t(y), weight=t(w), reduction=red)
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert gradcheck(lambda a: F.nll_loss(a, t(y), weight=t(w)), (t(x, True),))


def test_kl_div_batchmean_and_log_target():
    lp, q = np.log(P), P[::-1].copy()
    total = (q * (np.log(q) - lp)).sum()
    np.testing.assert_allclose(F.kl_div(t(lp), t(q), reduction="batchmean").item(), total / 3)
    np.testing.assert_allclose(
        F.kl_div(t(lp), t(np.log(q)), reduction="sum", log_target=True).item(), total)
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(t(lp), t(q))


def test_gaussian_nll_homoscedastic_var():
    x, y = t(X), t(Y)
    v = t(np.array([0.5, 1.0, 2.0]))
    ref = 0.5 * (np.log(v.numpy())[:, None] + (X - Y) ** 2 / v.numpy()[:, None])
    np.testing.assert_allclose(F.gaussian_nll_loss(x, y, v, reduction="none").numpy(), ref)
    np.testing.assert_allclose(F.gaussian_nll_loss(x, y, v.unsqueeze(1), reduction="none")
                               .numpy(), ref)


# ----------------------------------------------------------------------------- modules
def test_modules_match_functional_and_keep_weights_as_buffers():
    w = dtorch.tensor([1.0, 2.0, 3.0])
    ce = nn.CrossEntropyLoss(weight=w, ignore_index=1, label_smoothing=0.1)
    assert repr(ce) == "CrossEntropyLoss()" and list(ce.state_dict()) == ["weight"]
    x, y = dtorch.randn(4, 3), dtorch.tensor([0, 1, 2, 2])
    np.testing.assert_allclose(ce(x, y).item(), F.cross_entropy(
        x, y, weight=w, ignore_index=1, label_smoothing=0.1).item(), rtol=1e-6)
    bce = nn.BCEWithLogitsLoss(pos_weight=dtorch.tensor([2.0]))
    assert [n for n, _ in bce.named_buffers()] == ["pos_weight"]
    assert nn.NLLLoss().weight is None and repr(nn.KLDivLoss()) == "KLDivLoss()"
    pairs = [
        (nn.L1Loss(reduction="sum"), F.l1_loss, {"reduction": "sum"}),
        (nn.SmoothL1Loss(beta=0.5), F.smooth_l1_loss, {"beta": 0.5}),
        (nn.HuberLoss(delta=0.5), F.huber_loss, {"delta": 0.5}),
        (nn.SoftMarginLoss(), F.soft_margin_loss, {}),
        (nn.MultiLabelSoftMarginLoss(), F.multilabel_soft_margin_loss, {}),
        (nn.HingeEmbeddingLoss(margin=0.3), F.hinge_embedding_loss, {"margin": 0.3}),
        (nn.PoissonNLLLoss(log_input=False), F.poisson_nll_loss, {"log_input": False}),
    ]
    a, b = t(np.abs(X) + 0.1), t(S)
    for m, fn, kw in pairs:
        np.testing.assert_allclose(m(a, b).numpy(), fn(a, b, **kw).numpy(), err_msg=repr(m))
    c = t(P)
    assert nn.TripletMarginLoss(margin=1.5, p=3)(a, b, c).item() == pytest.approx(
        F.triplet_margin_loss(a, b, c, margin=1.5, p=3).item())
    assert nn.GaussianNLLLoss(full=True)(a, b, c).item() == pytest.approx(
        F.gaussian_nll_loss(a, b, c, full=True).item())
    assert nn.MultiMarginLoss(p=2)(a, dtorch.tensor([0, 1, 2])).item() == pytest.approx(
        F.multi_margin_loss(a, dtorch.tensor([0, 1, 2]), p=2).item())
    d = nn.TripletMarginWithDistanceLoss(distance_function=lambda u, v: (u - v).abs().sum(-1))
    assert d(a, b, c).item() == pytest.approx(
        (((a - b).abs().sum(-1) - (a - c).abs().sum(-1) + 1).clamp(min=0)).mean().item())
