"""Feature networks for Frechet/kernel distances.

FID proper uses Inception-v3 features (weights not available offline here). shred's own offline
substitute is a small classifier trained by the project on the dataset's training split; distances
on its features are labelled by the dataset (``FID-C10`` for CIFAR-10), never "FID". Any callable
``images [B, C, H, W] in [0, 1] -> features [B, D]`` can be plugged in instead (:func:`load_feature_net`).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShredError


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class SmallResNet(nn.Module):
    """A 7-layer residual classifier; ``features`` is the 4*width pooled penultimate activation.

    Input: images in [0, 1], [B, channels, H, W] (normalised inside with mean 0.5, std 0.25).
    """

    def __init__(self, channels: int = 3, classes: int = 10, width: int = 32):
        super().__init__()
        self.config = {"channels": channels, "classes": classes, "width": width}
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(_Block(width, width, 1), _Block(width, 2 * width, 2), _Block(2 * width, 4 * width, 2))
        self.head = nn.Linear(4 * width, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(self.stem((x - 0.5) / 0.25))
        return h.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and random crops after 4-pixel reflection padding."""
    n, _, h, w = x.shape
    flip = (torch.rand(n, generator=g, device=g.device) < 0.5).view(-1, 1, 1, 1)
    x = torch.where(flip, x.flip(-1), x)
    pad = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dy = torch.randint(0, 9, (n,), generator=g, device=g.device)
    dx = torch.randint(0, 9, (n,), generator=g, device=g.device)
    return _crop(pad, dy, dx, h, w)


def _crop(pad: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per-image crops pad[i, :, dy_i:dy_i+h, dx_i:dx_i+w]."""
    n, c = pad.shape[:2]
    iy = (dy.view(n, 1) + torch.arange(h, device=pad.device)).view(n, 1, h, 1).expand(n, c, h, pad.shape[-1])
    rows = pad.gather(2, iy)
    ix = (dx.view(n, 1) + torch.arange(w, device=pad.device)).view(n, 1, 1, w).expand(n, c, h, w)
    return rows.gather(3, ix)


def train_classifier(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor, *,
                     minutes: float = 2.0, epochs: int = 30, batch: int = 512, lr: float = 0.1, width: int = 32,
                     seed: int = 0, device=None, log=print) -> tuple[SmallResNet, dict[str, Any]]:
    """Train :class:`SmallResNet` (SGD, momentum 0.9, one-cycle learning rate) on uint8 or [0, 1]
    images; stops at ``epochs`` or ``minutes``. Returns the network (eval mode) and a record with the
    test accuracy."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch.manual_seed(seed)
    to01 = (lambda t: t.float() / 255) if train_x.dtype == torch.uint8 else (lambda t: t.float())
    xs, ys = to01(train_x).to(device), train_y.to(device)
    net = SmallResNet(xs.shape[1], int(train_y.max()) + 1, width).to(device).to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(xs.shape[0] / batch)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch, pct_start=0.25)
    g = torch.Generator(device=device).manual_seed(seed)
    start, done_epochs = time.perf_counter(), 0
    use_bf16 = device.type == "cuda"
    out_of_time = False
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(xs.shape[0], generator=g, device=device)
        for i in range(steps_per_epoch):
            if time.perf_counter() - start > 60 * minutes:
                out_of_time = True
                break
            idx = perm[i * batch:(i + 1) * batch]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                loss = F.cross_entropy(net(_augment(xs[idx], g)), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        done_epochs = epoch + (0 if out_of_time else 1)
        if out_of_time:
            break
    net.eval()
    acc = accuracy(net, test_x, test_y, device)
    record = {"epochs": done_epochs, "stopped_by_time": out_of_time, "batch": batch, "lr": lr, "width": width, "test_accuracy": round(acc, 4),
              "train_images": int(xs.shape[0]), "test_images": int(test_x.shape[0]),
              "wall_time_s": round(time.perf_counter() - start, 1),
              "hardware": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"}
    log(f"classifier: {done_epochs} epochs, test accuracy {acc:.4f}")
    return net, record


@torch.no_grad()
def accuracy(net: SmallResNet, x: torch.Tensor, y: torch.Tensor, device=None, batch: int = 1000) -> float:
    device = device or next(net.parameters()).device
    to01 = (lambda t: t.float() / 255) if x.dtype == torch.uint8 else (lambda t: t.float())
    correct = 0
    for i in range(0, x.shape[0], batch):
        pred = net(to01(x[i:i + batch]).to(device)).argmax(1).cpu()
        correct += int((pred == y[i:i + batch]).sum())
    return correct / x.shape[0]


def save_classifier(net: SmallResNet, folder: str | Path, record: dict[str, Any], name: str) -> Path:
    from safetensors.torch import save

    from ..io import json_bytes, make_folder, write_all

    folder = make_folder(folder)
    state = {k: v.detach().cpu().float().contiguous() for k, v in net.state_dict().items()
             if v.dtype.is_floating_point}
    config = {"kind": "small-resnet-classifier", "name": name, "network": net.config, "training": record}
    write_all([(folder / "model.safetensors", save(state)), (folder / "config.json", json_bytes(config))])  # both or neither
    return folder


def load_classifier(folder: str | Path) -> SmallResNet:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    try:
        cfg = json.loads((folder / "config.json").read_text())
        state = load_file(str(folder / "model.safetensors"))  # tensors only: nothing in the file runs
    except (OSError, ValueError, SafetensorError) as exc:
        raise ShredError(f"{folder}: cannot read the classifier ({str(exc).strip().splitlines()[0][:160]})") from None
    net = SmallResNet(**cfg["network"])
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise ShredError(f"{folder}: classifier weights do not match its configuration")
    net.info = cfg
    return net.eval().requires_grad_(False)


def inception_network():
    """The FID Inception-v3 (pool3, 2048 features) through torchmetrics, which takes it from
    torch-fidelity; its weights are downloaded on first use. Raises ShredError when unavailable."""
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3
    except ImportError as exc:
        raise ShredError(f"Inception features need torchmetrics with torch-fidelity ({exc}); "
                         "use --features cifar10 (KID-C10 / FID-C10) instead") from None
    try:
        return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"]).eval()
    except Exception as exc:  # torch-fidelity missing, or its weights cannot be downloaded
        raise ShredError(f"cannot build the Inception network ({type(exc).__name__}: {str(exc)[:120]}); "
                         "it needs torch-fidelity and its downloaded weights; use --features cifar10") from None


def load_feature_net(name: str):
    """A feature callable by name, and the label its Frechet distance is reported under.

    * ``cifar10``: shred's bundled CIFAR-10 classifier -> ``FID-C10`` (never called "FID").
    * ``inception``: the FID Inception-v3 through torchmetrics (:func:`inception_network`; needs
      torch-fidelity and its weights) -> ``FID``. Images go in as uint8, as FID's reference code has it.
    * a folder written by :func:`save_classifier` -> ``FD-<folder>``.
    * an exported program (``torch.export.save``, ``.pt2``) or a TorchScript file mapping images
      [B, 3, H, W] in [0, 1] to features [B, D] -> ``FID`` when its name contains "inception" (e.g.
      an export of the pytorch-fid Inception-v3 pool3 network), else ``FD-<stem>``. These run
      code from the file: load only files you made or trust.

    Returns ``(callable, label)``; the kernel distance's label swaps FID for KID (:func:`kid_label`).
    """
    from ..models.registry import BUNDLED_DIR

    if name == "inception":
        net = inception_network()

        def inception_features(x: torch.Tensor) -> torch.Tensor:
            x = x.clamp(0, 1)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            return net((x * 255).round().to(torch.uint8)).reshape(x.shape[0], -1).float()
        return inception_features, "FID"
    labels = {"cifar10": "FID-C10"}
    path = BUNDLED_DIR / f"{name}-classifier" if name in labels else Path(name)
    if path.is_file():
        try:
            net = (torch.export.load(str(path)).module() if path.suffix == ".pt2"
                   else torch.jit.load(str(path), map_location="cpu").eval())
        except Exception as exc:
            raise ShredError(f"{path}: not an exported or TorchScript feature network ({exc})") from None
        label = "FID" if "inception" in path.stem.lower() else f"FD-{path.stem}"
        return (lambda x: net(x)), label
    if not (path / "config.json").is_file():
        raise ShredError(f"feature network {name!r} not found ({path}); give cifar10, inception, a classifier "
                         "folder or a TorchScript file")
    net = load_classifier(path)
    return net.features, labels.get(name, f"FD-{path.name}")


def kid_label(fid_label: str) -> str:
    """The kernel distance's label for a Frechet distance's: FID-C10 -> KID-C10, FID -> KID,
    FD-x -> KD-x."""
    if fid_label.startswith("FID"):
        return "KID" + fid_label[3:]
    return "KD" + fid_label[2:] if fid_label.startswith("FD") else f"KD-{fid_label}"
