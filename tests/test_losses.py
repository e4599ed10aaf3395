"""Each loss against a hand computation with plain loops (numpy, float64), over float32/float64;
gradients by finite differences; and the distributed path (2 gloo ranks) against 1 process."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from training.losses import (
    BalancedContrastiveLoss,
    ClassBalancedReducer,
    ClipLoss,
    LogitAdjustedLoss,
    LossConfig,
    PriorSightLoss,
    SupConLoss,
    UncertaintyWeighting,
    effective_number_weights,
)

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _data(n=8, d=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)), rng.standard_normal((n, d))


# -- references (plain loops) ----------------------------------------------------------------

def ref_supcon(x, labels, t, weights=None):
    z = _unit(x)
    losses, ws = [], []
    for i in range(len(z)):
        denom = sum(math.exp(z[i] @ z[a] / t) for a in range(len(z)) if a != i)
        pos = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        losses.append(-sum(math.log(math.exp(z[i] @ z[p] / t) / denom) for p in pos) / len(pos))
        ws.append(1.0 if weights is None else weights[labels[i]])
    return sum(loss * w for loss, w in zip(losses, ws, strict=True)) / len(losses)


def ref_bcl(x, labels, t, protos=None):
    z = _unit(x)
    keys, key_labels = list(z), list(labels)
    if protos is not None:
        keys += list(_unit(protos))
        key_labels += list(range(len(protos)))
    losses = []
    for i in range(len(z)):
        denom = 0.0
        for c in set(key_labels):
            members = [k for k in range(len(keys)) if key_labels[k] == c and k != i]
            if members:
                denom += sum(math.exp(z[i] @ keys[k] / t) for k in members) / len(members)
        pos = [p for p in range(len(keys)) if p != i and key_labels[p] == labels[i]]
        if pos:
            losses.append(-sum(z[i] @ keys[p] / t - math.log(denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


def ref_clip(img, txt, scale, pos_labels=None):
    zi, zt = _unit(img), _unit(txt)
    n = len(zi)
    lab = list(range(n)) if pos_labels is None else list(pos_labels)

    def direction(q, k):
        total = 0.0
        for i in range(n):
            logits = [scale * (q[i] @ k[j]) for j in range(n)]
            lse = math.log(sum(math.exp(v) for v in logits))
            pos = [j for j in range(n) if lab[j] == lab[i]]
            total += -sum(logits[j] - lse for j in pos) / len(pos)
        return total / n

    return (direction(zi, zt) + direction(zt, zi)) / 2


# -- tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_supcon_matches_reference(dtype):
    x, _ = _data()
    labels = [0, 0, 1, 1, 1, 2, 3, 3]  # class 2 has one member: its anchor is left out
    got = SupConLoss(temperature=0.2)(torch.tensor(x, dtype=dtype), torch.tensor(labels))
    assert got.dtype == dtype
    np.testing.assert_allclose(got.item(), ref_supcon(x, labels, 0.2), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_supcon_matches_pytorch_metric_learning(dtype):
    from pytorch_metric_learning.losses import SupConLoss as PmlSupCon

    x, _ = _data(seed=3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 1])  # every anchor has a positive
    ours = SupConLoss(temperature=0.1)(torch.tensor(x, dtype=dtype), labels)
    theirs = PmlSupCon(temperature=0.1)(torch.tensor(x, dtype=dtype), labels)
    np.testing.assert_allclose(ours.item(), theirs.item(), **TOL[dtype])


def test_effective_number_weights_by_hand():
    counts, beta = [1, 10, 100, 0], 0.9
    raw = [(1 - beta) / (1 - beta ** n) if n else 0.0 for n in counts]
    expected = [r * 3 / sum(raw) for r in raw]  # three present classes: weights sum to 3
    np.testing.assert_allclose(effective_number_weights(counts, beta).numpy(), expected, rtol=1e-12)
    w = effective_number_weights([5, 50, 500], 0.0)
    np.testing.assert_allclose(w.numpy(), [1, 1, 1])  # beta = 0: no re-weighting
    with pytest.raises(ValueError):
        effective_number_weights([1, 2], 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_supcon_with_class_balanced_reducer(dtype):
    x, _ = _data(seed=1)
    labels = [0, 0, 0, 0, 0, 1, 1, 2]
    counts = [500, 20, 3]
    w = effective_number_weights(counts, 0.99).numpy()
    loss = SupConLoss(0.1, reducer=ClassBalancedReducer(counts, 0.99))
    got = loss(torch.tensor(x, dtype=dtype), torch.tensor(labels))
    np.testing.assert_allclose(got.item(), ref_supcon(x, labels, 0.1, weights=w), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_prototypes", [False, True])
def test_bcl_matches_reference(dtype, with_prototypes):
    x, _ = _data(n=9)
    labels = [0, 0, 0, 0, 0, 1, 1, 2, 3]  # head, medium, and two singletons
    protos = np.random.default_rng(7).standard_normal((4, 5)) if with_prototypes else None
    got = BalancedContrastiveLoss(0.2)(torch.tensor(x, dtype=dtype), torch.tensor(labels),
                                       prototypes=None if protos is None else torch.tensor(_unit(protos), dtype=dtype))
    np.testing.assert_allclose(got.item(), ref_bcl(x, labels, 0.2, protos), **TOL[dtype])


def test_bcl_closed_form_for_pairs():
    """Two members per class: the own-class key is divided by 1, every other key by 2."""
    x, _ = _data(n=6)
    labels = [0, 0, 1, 1, 2, 2]
    z = _unit(x)
    t = 0.5
    expected = np.mean([-(z[i] @ z[i ^ 1] / t - math.log(
        math.exp(z[i] @ z[i ^ 1] / t) + sum(math.exp(z[i] @ z[k] / t) for k in range(6) if k // 2 != i // 2) / 2))
        for i in range(6)])
    got = BalancedContrastiveLoss(t)(torch.tensor(x), torch.tensor(labels))
    np.testing.assert_allclose(got.item(), expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_labels", [None, [0, 0, 1, 2, 2, 2, 3, 4]])
def test_clip_matches_reference(dtype, pos_labels):
    img, txt = _data()
    loss = ClipLoss(temperature=0.07).to(dtype)  # the logit scale is a parameter: same dtype as the model
    got = loss(torch.tensor(img, dtype=dtype), torch.tensor(txt, dtype=dtype),
               positive_labels=None if pos_labels is None else torch.tensor(pos_labels))
    scale = loss.logit_scale.exp().item()  # the parameter, as stored in dtype
    np.testing.assert_allclose(scale, 1 / 0.07, rtol=1e-6)
    np.testing.assert_allclose(got.item(), ref_clip(img, txt, scale, pos_labels), **TOL[dtype])


def test_clip_logit_scale_is_learnable_and_clamped():
    img, txt = _data()
    loss = ClipLoss(temperature=0.07)
    out = loss(torch.tensor(img), torch.tensor(txt))
    out.backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.abs() > 0
    fixed = ClipLoss(temperature=0.001, learn_temperature=False)  # 1/t = 1000 > max 100
    np.testing.assert_allclose(fixed(torch.tensor(img), torch.tensor(txt)).item(), ref_clip(img, txt, 100.0), rtol=1e-9)
    with pytest.raises(ValueError, match="weight_labels"):
        ClipLoss(reducer=ClassBalancedReducer([1, 2]))(torch.tensor(img), torch.tensor(txt))


@pytest.mark.parametrize("dtype", DTYPES)
def test_logit_adjusted_matches_reference(dtype):
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 3))
    labels = [0, 1, 2, 0, 0, 1]
    counts, tau = [100, 10, 1], 1.5
    prior = np.array(counts) / sum(counts)
    expected = 0.0
    for i, y in enumerate(labels):
        adj = [logits[i, c] + tau * math.log(prior[c]) for c in range(3)]
        expected += -(adj[y] - math.log(sum(math.exp(a) for a in adj))) / len(labels)
    got = LogitAdjustedLoss(counts, tau)(torch.tensor(logits, dtype=dtype), torch.tensor(labels))
    np.testing.assert_allclose(got.item(), expected, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_uncertainty_weighting_matches_reference(dtype):
    uw = UncertaintyWeighting(["instance", "class"])
    with torch.no_grad():
        uw.log_vars["instance"].fill_(0.3)
        uw.log_vars["class"].fill_(-0.5)
    a, b = torch.tensor(2.0, dtype=dtype), torch.tensor(0.7, dtype=dtype)
    total = uw({"instance": a, "class": b})
    expected = math.exp(-0.3) * 2.0 + 0.15 + math.exp(0.5) * 0.7 - 0.25
    np.testing.assert_allclose(total.item(), expected, rtol=1e-6)
    total.backward()
    # d/ds [exp(-s) L + s/2] = -exp(-s) L + 1/2
    np.testing.assert_allclose(uw.log_vars["instance"].grad.item(), -math.exp(-0.3) * 2.0 + 0.5, rtol=1e-6)
    with pytest.raises(ValueError):
        uw({"instance": a})


@pytest.mark.parametrize("make", [
    lambda: (SupConLoss(0.3), lambda f, x, y: f(x, y)),
    lambda: (BalancedContrastiveLoss(0.3), lambda f, x, y: f(x, y)),
    lambda: (ClipLoss(0.3), lambda f, x, y: f(x, x.flip(0))),
])
def test_gradients_match_finite_differences(make):
    loss, call = make()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 1, 1, 2])
    assert torch.autograd.gradcheck(lambda e: call(loss, e, y), (x,), eps=1e-6, atol=1e-6)


def test_no_positive_anchor_gives_zero_loss_with_gradient_path():
    x = torch.randn(3, 4, requires_grad=True)
    out = SupConLoss()(x, torch.tensor([0, 1, 2]))
    assert out.item() == 0.0
    out.backward()
    assert x.grad is not None


def test_priorsight_loss_combines_terms():
    torch.manual_seed(0)
    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=1).requires_grad_()
    txt = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    patents = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    cfg = LossConfig(logit_adjusted=True)
    loss = PriorSightLoss(cfg, class_counts=[100, 10, 2], embed_dim=16)
    assert loss.needs_prototypes
    with pytest.raises(ValueError, match="prototypes"):  # they are the model's class head, passed in
        loss(img, patents, classes, text_emb=txt)
    protos = torch.nn.Parameter(torch.randn(3, 16))
    total, parts = loss(img, patents, classes, text_emb=txt, prototypes=protos)
    assert set(parts) == {"image_text", "image_image", "class", "logit_adjusted"}
    # at initialisation s_k = 0: the uncertainty combination is the plain sum
    np.testing.assert_allclose(total.item(), sum(p.item() for p in parts.values()), rtol=1e-6)
    total.backward()
    assert img.grad is not None and protos.grad is not None
    assert all(p.grad is not None for p in loss.weighting.parameters())
    summed = PriorSightLoss(LossConfig(combine="sum", class_level="supcon", image_text=False,
                                       class_balanced_beta=None), [100, 10, 2], 16)
    total2, parts2 = summed(img, patents, classes)
    assert set(parts2) == {"image_image", "class"} and not summed.needs_prototypes
    np.testing.assert_allclose(total2.item(), sum(p.item() for p in parts2.values()), rtol=1e-6)


def test_words_terms_and_the_preserve_term():
    torch.manual_seed(1)
    img = torch.nn.functional.normalize(torch.randn(8, 16), dim=1).requires_grad_()
    doc = torch.nn.functional.normalize(torch.randn(8, 16), dim=1).requires_grad_()
    patents = torch.arange(8)
    classes = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2])
    cfg = LossConfig(image_text=False, logit_adjusted=True, text_class=True, preserve=True, la_temperature=0.05)
    loss = PriorSightLoss(cfg, [4, 2, 2], 16)
    assert loss.la_temperature == 0.05
    protos = torch.nn.Parameter(torch.randn(3, 16))
    anchor = torch.randn(8, 32)
    mask = torch.tensor([True] * 7 + [False])
    total, parts = loss(img, patents, classes, doc_emb=doc, doc_mask=mask, anchor=anchor, prototypes=protos)
    assert {"text_class", "text_logit_adjusted", "preserve"} <= set(parts)
    total.backward()
    assert doc.grad is not None and protos.grad is not None
    assert torch.all(doc.grad[7] == 0)  # the drawing without words takes no part in the words terms
    # the preserve term is 0 when the embeddings' neighbour distribution is the anchor's own
    same = torch.nn.functional.normalize(anchor - anchor.mean(0), dim=1)
    from training.losses import SimilarityPreservingLoss

    assert SimilarityPreservingLoss(0.1)(same[:, :32], anchor).item() == pytest.approx(0.0, abs=1e-5)
    assert SimilarityPreservingLoss(0.1)(torch.nn.functional.normalize(torch.randn(8, 32), dim=1), anchor) > 0.01


# -- distributed: 2 gloo ranks == 1 process on the same global batch ------------------------

def _rank_main(rank: int, world: int, init_file: str, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor,
               results) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        b = x.shape[0] // world
        sl = slice(rank * b, (rank + 1) * b)
        out = {}
        for name, fn in _LOSSES.items():
            xl = x[sl].clone().requires_grad_()
            loss = fn(xl, t[sl], y[sl])
            loss.backward()
            out[name] = (loss.item(), xl.grad.numpy().copy())  # numpy: no shared-memory handles
        results.put((rank, out))
    finally:
        dist.destroy_process_group()


_LOSSES = {
    "supcon": lambda x, t, y: SupConLoss(0.2)(x, y),
    "bcl": lambda x, t, y: BalancedContrastiveLoss(0.2)(x, y, prototypes=torch.eye(3, 4, dtype=x.dtype)),
    "clip": lambda x, t, y: ClipLoss(0.1)(x, t),
    "clip_patent": lambda x, t, y: ClipLoss(0.1)(x, t, positive_labels=y),
}


def test_two_ranks_equal_one_process(tmp_path):
    torch.manual_seed(0)
    x, t = torch.randn(8, 4, dtype=torch.float64), torch.randn(8, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 2, 0, 0, 1, 2])
    single = {}
    for name, fn in _LOSSES.items():
        xs = x.clone().requires_grad_()
        loss = fn(xs, t, y)
        loss.backward()
        single[name] = (loss.item(), xs.grad.clone())
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, str(tmp_path / "init"), x, t, y, results)) for r in range(2)]
    for p in procs:
        p.start()
    got = dict(results.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    for name, (loss, grad) in single.items():
        mean_loss = (got[0][name][0] + got[1][name][0]) / 2  # what DDP's averaging optimises
        np.testing.assert_allclose(mean_loss, loss, rtol=1e-10, err_msg=name)
        # all_gather's backward sums over ranks, DDP then averages over ranks: / world
        dist_grad = np.concatenate([got[0][name][1], got[1][name][1]]) / 2
        np.testing.assert_allclose(dist_grad, grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["supcon", "bcl"])
def test_a_mask_is_the_same_as_leaving_the_rows_out(kind):
    torch.manual_seed(4)
    x = torch.nn.functional.normalize(torch.randn(10, 8), dim=1)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 1, 2])
    mask = torch.tensor([True, True, False, True, True, True, False, True, True, True])
    protos = torch.nn.functional.normalize(torch.randn(3, 8), dim=1)
    if kind == "supcon":
        masked, subset = SupConLoss(0.2)(x, y, mask=mask), SupConLoss(0.2)(x[mask], y[mask])
    else:
        masked = BalancedContrastiveLoss(0.2)(x, y, prototypes=protos, mask=mask)
        subset = BalancedContrastiveLoss(0.2)(x[mask], y[mask], prototypes=protos)
    assert masked.item() == pytest.approx(subset.item(), rel=1e-6)
