"""Losses for distribution-aware multimodal training, one small class each.

Every contrastive loss compares the *local* anchors of this rank with the *keys* of all ranks
(gathered with gradients, as open_clip's ``local_loss=True, gather_with_grad=True``): memory grows
linearly with the global batch, and averaging the per-rank losses (DDP averages gradients)
gives exactly the single-process loss on the same global batch, provided every rank holds the
same number of rows. Without ``torch.distributed`` the gathering is a no-op.

Per-anchor terms are reduced by a pytorch-metric-learning reducer (``MeanReducer`` by default;
:class:`ClassBalancedReducer` for Cui et al. 2019 class-balanced weighting); the similarity is a
pytorch-metric-learning distance (``CosineSimilarity`` by default). Labels are integer tensors;
patent and class codes must be the same on every rank (index them over the whole dataset).

* :class:`ClipLoss` image-text InfoNCE (symmetric, learnable logit scale; Radford 2021);
* :class:`SupConLoss` supervised contrastive over labels (Khosla 2020, L_out);
* :class:`BalancedContrastiveLoss` class-averaged denominators + class prototypes (BCL, Zhu 2022);
* :class:`LogitAdjustedLoss` logit-adjusted cross-entropy (Menon 2021), BCL's classifier branch;
* :func:`effective_number_weights` / :class:`ClassBalancedReducer` (Cui 2019);
* :class:`UncertaintyWeighting` homoscedastic uncertainty weights (Kendall 2018);
* :class:`SimilarityPreservingLoss` relational distillation from the pretrained backbone (each
  drawing's neighbour distribution in the batch kept close to the pretrained one: Park 2019,
  Tung & Mori 2019), so class-level terms do not erase instance-level similarity;
* :class:`PriorSightLoss` instance-level + class-level terms combined, built from :class:`LossConfig`;
  the class-level terms can also shape the text tower on each drawing's own words (its title:
  what stands for it at query and index time), sharing the class prototypes with the images.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from pytorch_metric_learning.distances import BaseDistance, CosineSimilarity
from pytorch_metric_learning.reducers import BaseReducer, ClassWeightedReducer, MeanReducer
from torch import Tensor, nn

# -- distributed helpers -----------------------------------------------------------------------

def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    """all_gather whose backward sums the gradient over ranks and keeps this rank's slice
    (open_clip's ``gather_with_grad``); all_reduce-based so it also runs on gloo."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        rank, size = world()
        ctx.rank, ctx.rows = rank, x.shape[0]
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks along dim 0; gradients flow back to every rank's slice
    (summed over ranks; DDP's gradient averaging then gives the single-process gradient)."""
    if world()[1] == 1:
        return x
    return _AllGather.apply(x)


def gather_no_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` (e.g. labels) from all ranks along dim 0, without gradients."""
    _, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


def _reduce(reducer: BaseReducer, losses: Tensor, anchors: Tensor, weight_labels: Tensor,
            embeddings: Tensor) -> Tensor:
    """Reduce per-anchor ``losses`` (for anchor rows ``anchors``) with a pml reducer."""
    if losses.numel() == 0:
        return embeddings.sum() * 0
    info = {"loss": {"losses": losses, "indices": anchors, "reduction_type": "element"}}
    return reducer(info, embeddings, weight_labels)


def _keys(x: Tensor, labels: Tensor | None, gather: bool) -> tuple[Tensor, Tensor | None, int]:
    """All ranks' rows (with grad) and labels, and the offset of this rank's rows among them."""
    if not gather or world()[1] == 1:
        return x, labels, 0
    rank, _ = world()
    return gather_with_grad(x), (None if labels is None else gather_no_grad(labels)), rank * x.shape[0]


# -- class-balanced weighting (Cui et al. 2019) ------------------------------------------------

def effective_number_weights(class_counts: Sequence[int] | Tensor, beta: float = 0.999) -> Tensor:
    """Per-class weights ``(1 - beta) / (1 - beta**n_c)``, normalised to sum to the class count.

    ``beta = 0`` gives uniform weights, ``beta -> 1`` inverse-frequency weights. Classes with no
    samples get weight 0.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    n = torch.as_tensor(class_counts, dtype=torch.float64)
    if n.dim() != 1 or (n < 0).any():
        raise ValueError("class_counts must be a 1-d sequence of non-negative counts")
    present = n > 0
    w = torch.zeros_like(n)
    w[present] = (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), n[present]))
    return w * (int(present.sum()) / w.sum())


class ClassBalancedReducer(ClassWeightedReducer):
    """``mean_i(w[y_i] * loss_i)`` with effective-number weights; ``y`` are class indices."""

    def __init__(self, class_counts: Sequence[int] | Tensor, beta: float = 0.999, **kwargs):
        super().__init__(weights=effective_number_weights(class_counts, beta), **kwargs)


# -- losses ------------------------------------------------------------------------------------

class ClipLoss(nn.Module):
    """Symmetric image-text InfoNCE with a learnable logit scale (initialised to 1/temperature).

    ``positive_labels`` (optional, e.g. patent codes) makes every pair with the same label a
    positive, with uniform target mass (multi-positive InfoNCE); by default row i matches text i.
    """

    def __init__(self, temperature: float = 0.07, learn_temperature: bool = True,
                 max_logit_scale: float = 100.0, gather: bool = True,
                 distance: BaseDistance | None = None, reducer: BaseReducer | None = None):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / temperature)), requires_grad=learn_temperature)
        self.max_logit_scale = max_logit_scale
        self.gather = gather
        self.distance = distance or CosineSimilarity()
        self.reducer = reducer or MeanReducer()

    def _direction(self, q: Tensor, k_all: Tensor, lab: Tensor, lab_all: Tensor, scale: Tensor) -> Tensor:
        logits = scale * self.distance(q, k_all)
        target = (lab[:, None] == lab_all[None, :]).to(logits.dtype)
        target = target / target.sum(dim=1, keepdim=True)
        return -(target * F.log_softmax(logits, dim=1)).sum(dim=1)

    def forward(self, image_emb: Tensor, text_emb: Tensor, positive_labels: Tensor | None = None,
                weight_labels: Tensor | None = None) -> Tensor:
        if image_emb.shape != text_emb.shape:
            raise ValueError(f"image and text embeddings differ in shape: {image_emb.shape} vs {text_emb.shape}")
        if weight_labels is None and isinstance(self.reducer, ClassWeightedReducer):
            raise ValueError("a class-weighted reducer needs weight_labels (class indices)")
        rows = torch.arange(image_emb.shape[0], device=image_emb.device)
        img_all, _, offset = _keys(image_emb, None, self.gather)
        txt_all, _, _ = _keys(text_emb, None, self.gather)
        if positive_labels is None:
            lab, lab_all = rows + offset, torch.arange(img_all.shape[0], device=image_emb.device)
        else:
            lab = positive_labels
            lab_all = gather_no_grad(positive_labels) if self.gather else positive_labels
        scale = self.logit_scale.exp().clamp(max=self.max_logit_scale).to(image_emb.dtype)
        wl = rows if weight_labels is None else weight_labels
        i2t = self._direction(image_emb, txt_all, lab, lab_all, scale)
        t2i = self._direction(text_emb, img_all, lab, lab_all, scale)
        return (_reduce(self.reducer, i2t, rows, wl, image_emb) + _reduce(self.reducer, t2i, rows, wl, text_emb)) / 2


class _ContrastiveOverLabels(nn.Module):
    """Shared settings of the label-based contrastive losses: temperature, cross-rank keys,
    a pytorch-metric-learning distance and reducer."""

    def __init__(self, temperature: float = 0.1, gather: bool = True,
                 distance: BaseDistance | None = None, reducer: BaseReducer | None = None):
        super().__init__()
        self.temperature = temperature
        self.gather = gather
        self.distance = distance or CosineSimilarity()
        self.reducer = reducer or MeanReducer()


class SupConLoss(_ContrastiveOverLabels):
    """Supervised contrastive loss (Khosla 2020, L_out): for anchor i with positives P(i),
    ``-1/|P(i)| sum_p log(exp(s_ip/t) / sum_{a != i} exp(s_ia/t))``; anchors without a positive
    are left out. Labels may be patent codes (instance level) or class codes (class level)."""

    def forward(self, embeddings: Tensor, labels: Tensor, weight_labels: Tensor | None = None,
                mask: Tensor | None = None) -> Tensor:
        """``mask`` (optional, bool per row): rows taking no part at all (neither anchor nor key)."""
        keys, key_labels, offset = _keys(embeddings, labels, self.gather)
        b = embeddings.shape[0]
        rows = torch.arange(b, device=embeddings.device)
        logits = self.distance(embeddings, keys) / self.temperature
        not_self = torch.ones_like(logits, dtype=torch.bool)
        not_self[rows, rows + offset] = False
        if mask is not None:  # masked keys leave every denominator; masked anchors are dropped below
            key_ok = gather_no_grad(mask) if self.gather else mask
            not_self = not_self & key_ok[None, :]
        pos = (labels[:, None] == key_labels[None, :]) & not_self
        log_prob = logits - torch.logsumexp(logits.masked_fill(~not_self, float("-inf")), dim=1, keepdim=True)
        n_pos = pos.sum(dim=1)
        valid = n_pos > 0 if mask is None else (n_pos > 0) & mask
        per_anchor = -(log_prob * pos).sum(dim=1)[valid] / n_pos[valid]
        wl = labels if weight_labels is None else weight_labels
        return _reduce(self.reducer, per_anchor, rows[valid], wl, embeddings)


class BalancedContrastiveLoss(_ContrastiveOverLabels):
    """Balanced contrastive learning (Zhu 2022): SupCon whose denominator averages within each
    class, ``sum_c 1/|B_c| sum_{k in B_c} exp(s_ik/t)`` (anchor excluded from its own class), so
    head classes do not dominate; optional class prototypes (C, D) join the keys as one extra
    member of each class, labelled 0..C-1 (labels must then be class indices)."""

    def forward(self, embeddings: Tensor, labels: Tensor, prototypes: Tensor | None = None,
                weight_labels: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """``mask`` (optional, bool per row): rows taking no part at all (neither anchor nor key)."""
        keys, key_labels, offset = _keys(embeddings, labels, self.gather)
        key_ok = None
        if mask is not None:
            key_ok = gather_no_grad(mask) if self.gather else mask
        if prototypes is not None:
            keys = torch.cat([keys, prototypes.to(keys.dtype)])
            key_labels = torch.cat([key_labels, torch.arange(prototypes.shape[0], device=labels.device)])
            if key_ok is not None:
                key_ok = torch.cat([key_ok, torch.ones(prototypes.shape[0], dtype=torch.bool, device=labels.device)])
        b = embeddings.shape[0]
        rows = torch.arange(b, device=embeddings.device)
        logits = self.distance(embeddings, keys) / self.temperature
        not_self = torch.ones_like(logits, dtype=torch.bool)
        not_self[rows, rows + offset] = False
        if key_ok is not None:  # masked keys leave every denominator; masked anchors are dropped below
            not_self = not_self & key_ok[None, :]
        same = labels[:, None] == key_labels[None, :]
        # |B_c|: the (counted) keys of each key's class, minus the anchor itself
        if key_ok is None:
            _, inverse, counts = torch.unique(key_labels, return_inverse=True, return_counts=True)
            members = counts[inverse][None, :].to(logits.dtype) - same.to(logits.dtype)
        else:
            per_key = (key_labels[:, None] == key_labels[key_ok][None, :]).sum(dim=1).to(logits.dtype)
            members = per_key[None, :] - (same & key_ok[None, :]).to(logits.dtype)
        log_w = torch.where(not_self, -torch.log(members.clamp(min=1)), torch.full_like(logits, float("-inf")))
        log_denominator = torch.logsumexp(logits + log_w, dim=1, keepdim=True)
        pos = same & not_self
        n_pos = pos.sum(dim=1)
        valid = n_pos > 0 if mask is None else (n_pos > 0) & mask
        per_anchor = -((logits - log_denominator) * pos).sum(dim=1)[valid] / n_pos[valid]
        wl = labels if weight_labels is None else weight_labels
        return _reduce(self.reducer, per_anchor, rows[valid], wl, embeddings)


class LogitAdjustedLoss(nn.Module):
    """Cross-entropy on ``logits + tau * log(prior)`` (Menon 2021): balanced error on long tails."""

    def __init__(self, class_counts: Sequence[int] | Tensor, tau: float = 1.0, reducer: BaseReducer | None = None):
        super().__init__()
        counts = torch.as_tensor(class_counts, dtype=torch.float64).clamp(min=1)
        self.register_buffer("log_prior", torch.log(counts / counts.sum()))  # cast to the logits' dtype
        self.tau = tau
        self.reducer = reducer or MeanReducer()

    def forward(self, logits: Tensor, labels: Tensor, weight_labels: Tensor | None = None) -> Tensor:
        adjusted = logits + self.tau * self.log_prior.to(logits.dtype)
        per_sample = F.cross_entropy(adjusted, labels, reduction="none")
        rows = torch.arange(logits.shape[0], device=logits.device)
        return _reduce(self.reducer, per_sample, rows, labels if weight_labels is None else weight_labels, logits)


class SimilarityPreservingLoss(nn.Module):
    """``mean_i KL(p_i || q_i)``: ``p_i`` the softmax over the batch (itself excluded) of the
    pretrained features' centred cosine similarities to drawing i, ``q_i`` the same of the
    trained embeddings. Keeps what the pretrained backbone knows of near-duplicates and views
    of one design while the class-level terms reshape the space (relational distillation)."""

    def __init__(self, temperature: float = 0.1, teacher_temperature: float | None = None, gather: bool = True):
        super().__init__()
        self.temperature = temperature
        self.teacher_temperature = teacher_temperature or temperature
        self.gather = gather

    def forward(self, embeddings: Tensor, anchor: Tensor) -> Tensor:
        keys, _, offset = _keys(embeddings, None, self.gather)
        with torch.no_grad():
            a_all = gather_no_grad(anchor) if self.gather else anchor
            center = a_all.mean(dim=0, keepdim=True)
            a_all = F.normalize(a_all - center, dim=1)
            a = a_all[offset:offset + embeddings.shape[0]]
        rows = torch.arange(embeddings.shape[0], device=embeddings.device)
        self_mask = torch.zeros(embeddings.shape[0], keys.shape[0], dtype=torch.bool, device=embeddings.device)
        self_mask[rows, rows + offset] = True
        student = (embeddings @ keys.T / self.temperature).masked_fill(self_mask, float("-inf"))
        teacher = (a @ a_all.T / self.teacher_temperature).masked_fill(self_mask, float("-inf"))
        p = F.softmax(teacher, dim=1)
        log_q = F.log_softmax(student, dim=1)
        log_p = F.log_softmax(teacher, dim=1)
        kl = (p * (log_p - log_q)).masked_fill(self_mask, 0.0).sum(dim=1)
        return kl.mean()


class UncertaintyWeighting(nn.Module):
    """Homoscedastic uncertainty weighting (Kendall 2018, softmax likelihoods):
    ``total = sum_k exp(-s_k) * L_k + s_k / 2`` with learnable ``s_k = log sigma_k^2`` (init 0)."""

    def __init__(self, names: Sequence[str]):
        super().__init__()
        if not names or len(set(names)) != len(names):
            raise ValueError(f"need distinct loss names, got {list(names)}")
        self.log_vars = nn.ParameterDict({n: nn.Parameter(torch.zeros(())) for n in names})

    def forward(self, losses: Mapping[str, Tensor]) -> Tensor:
        if set(losses) != set(self.log_vars):
            raise ValueError(f"expected losses {sorted(self.log_vars)}, got {sorted(losses)}")
        return sum(torch.exp(-self.log_vars[n]) * loss + self.log_vars[n] / 2 for n, loss in losses.items())

    def weights(self) -> dict[str, float]:
        """Current effective weights ``exp(-s_k)`` (for logging)."""
        return {n: float(torch.exp(-s.detach())) for n, s in self.log_vars.items()}


# -- the combination -------------------------------------------------------------------------

@dataclass(frozen=True)
class LossConfig:
    """Which terms make up the training loss, and how they are combined."""

    image_text: bool = True  # instance level: drawing <-> description (ClipLoss)
    image_image: bool = True  # instance level: views / augmentations of one patent (SupCon on patents)
    class_level: Literal["supcon", "bcl", "none"] = "bcl"  # coarse level: Locarno classes
    logit_adjusted: bool = False  # BCL's classifier branch on class prototypes
    #: the class-level terms (``class_level`` or SupCon, and logit adjustment) on the text tower's
    #: embeddings of each drawing's words too, against the same class prototypes: words of one
    #: class come together, so a query's words find the drawings of its class by their words
    text_class: bool = False
    #: relational distillation from the pretrained backbone (SimilarityPreservingLoss)
    preserve: bool = False
    preserve_temperature: float = 0.1
    clip_positives: Literal["pair", "patent"] = "patent"  # views of one patent are positives for its texts
    temperature: float = 0.07  # initial CLIP temperature (learned)
    instance_temperature: float = 0.1
    class_temperature: float = 0.1
    #: None: plain mean; else Cui 2019 weights by class. Weights and logit adjustment follow the
    #: class counts given to PriorSightLoss (train.py passes the counts the sampler will show).
    class_balanced_beta: float | None = None
    la_tau: float = 1.0
    #: temperature of the prototype logits of logit adjustment (None: class_temperature); a
    #: classifier wants sharper logits than a contrastive term
    la_temperature: float | None = None
    combine: Literal["uncertainty", "sum"] = "uncertainty"


#: the full method, what ``priorsight train`` and ``make demo`` use and ``bench retrieval`` calls
#: (d): image-text alignment, instance and class-level terms (balanced contrastive with the class
#: prototypes, logit adjustment, class-balanced weights) on drawings and on their words,
#: relational distillation from the pretrained backbone, uncertainty weighting (docs/training.md)
DEFAULT_LOSS = LossConfig(image_text=True, image_image=True, class_level="bcl", logit_adjusted=True,
                          class_balanced_beta=0.999, text_class=True, combine="uncertainty", class_temperature=0.3,
                          la_temperature=0.07, preserve=True)


class PriorSightLoss(nn.Module):
    """Instance-level (image-text, image-image) and class-level terms, combined with learnable
    uncertainty weights (or summed). Call with L2-normalised embeddings and integer codes."""

    def __init__(self, config: LossConfig, class_counts: Sequence[int], embed_dim: int):
        super().__init__()
        self.config = config
        counts = list(class_counts)
        reducer = (lambda: ClassBalancedReducer(counts, config.class_balanced_beta)) \
            if config.class_balanced_beta is not None else MeanReducer
        self.terms = nn.ModuleDict()
        if config.image_text:
            self.terms["image_text"] = ClipLoss(config.temperature, reducer=reducer())
        if config.image_image:
            self.terms["image_image"] = SupConLoss(config.instance_temperature, reducer=reducer())
        if config.class_level == "supcon":
            self.terms["class"] = SupConLoss(config.class_temperature, reducer=reducer())
        elif config.class_level == "bcl":
            self.terms["class"] = BalancedContrastiveLoss(config.class_temperature, reducer=reducer())
        if config.logit_adjusted:
            self.terms["logit_adjusted"] = LogitAdjustedLoss(counts, config.la_tau, reducer=reducer())
        if config.text_class:
            self.terms["text_class"] = BalancedContrastiveLoss(config.class_temperature, reducer=reducer()) \
                if config.class_level == "bcl" else SupConLoss(config.class_temperature, reducer=reducer())
            if config.logit_adjusted:
                self.terms["text_logit_adjusted"] = LogitAdjustedLoss(counts, config.la_tau, reducer=reducer())
        if config.preserve:
            self.terms["preserve"] = SimilarityPreservingLoss(config.preserve_temperature)
        if not self.terms:
            raise ValueError("LossConfig enables no loss term")
        self.weighting = UncertaintyWeighting(list(self.terms)) if config.combine == "uncertainty" else None

    @property
    def needs_prototypes(self) -> bool:
        """Whether the terms use class prototypes (the model's :class:`~training.models.ClassHead`)."""
        return self.config.logit_adjusted or self.config.class_level == "bcl" or \
            (self.config.text_class and self.config.class_level == "bcl")

    @property
    def la_temperature(self) -> float:
        """The temperature of the prototype logits (logit adjustment, and the class head's)."""
        return self.config.la_temperature or self.config.class_temperature

    def forward(self, image_emb: Tensor, patent_labels: Tensor, class_labels: Tensor,
                text_emb: Tensor | None = None, doc_emb: Tensor | None = None,
                doc_mask: Tensor | None = None, anchor: Tensor | None = None,
                prototypes: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Returns ``(total, {term: value})``; ``class_labels`` are class indices 0..C-1.
        ``text_emb``: the descriptions (image-text term); ``doc_emb``: each drawing's own words
        (text class terms), ``doc_mask`` False where a drawing has none; ``anchor``: the pretrained
        backbone's features of the same images (the preserve term); ``prototypes``: the class
        prototypes (C, D), the model's class head, when the terms use them."""
        if self.needs_prototypes and prototypes is None:
            raise ValueError("these loss terms need the class prototypes (the model's class head)")
        protos = None if prototypes is None else F.normalize(prototypes, dim=1)
        parts: dict[str, Tensor] = {}
        for name, term in self.terms.items():
            if name in ("text_class", "text_logit_adjusted"):
                if doc_emb is None:
                    raise ValueError(f"{name} loss needs doc_emb (the drawings' words)")
                parts[name] = self._text_term(name, term, doc_emb, class_labels, doc_mask, protos)
                continue
            if name == "preserve":
                if anchor is None:
                    raise ValueError("the preserve loss needs the pretrained features (anchor)")
                parts[name] = term(image_emb, anchor)
                continue
            if name == "image_text":
                if text_emb is None:
                    raise ValueError("image_text loss needs text_emb")
                pos = patent_labels if self.config.clip_positives == "patent" else None
                parts[name] = term(image_emb, text_emb, positive_labels=pos, weight_labels=class_labels)
            elif name == "image_image":
                parts[name] = term(image_emb, patent_labels, weight_labels=class_labels)
            elif name == "class" and isinstance(term, BalancedContrastiveLoss):
                parts[name] = term(image_emb, class_labels, prototypes=protos)
            elif name == "class":
                parts[name] = term(image_emb, class_labels)
            else:  # logit_adjusted: cosine logits against the prototypes
                parts[name] = term(image_emb @ protos.T / self.la_temperature, class_labels)
        total = self.weighting(parts) if self.weighting is not None else sum(parts.values())
        return total, parts

    def _text_term(self, name: str, term: nn.Module, doc_emb: Tensor, class_labels: Tensor,
                   doc_mask: Tensor | None, protos: Tensor | None) -> Tensor:
        if name == "text_logit_adjusted":  # per sample: drawings without words just drop out
            keep = torch.ones_like(class_labels, dtype=torch.bool) if doc_mask is None else doc_mask
            if not keep.any():
                return doc_emb.sum() * 0
            return term(doc_emb[keep] @ protos.T / self.la_temperature, class_labels[keep])
        if isinstance(term, BalancedContrastiveLoss):  # no words: neither anchor nor key
            return term(doc_emb, class_labels, prototypes=protos, mask=doc_mask)
        return term(doc_emb, class_labels, mask=doc_mask)
