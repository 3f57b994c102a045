"""Linear probes reading one object per slot from frozen embeddings (the paper's TOC and IOC).

For each slot k (an object position in a caption, or a size category in an image), a multinomial
logistic regression is trained on frozen embeddings to predict the vocabulary index of the
object in slot k, and its accuracy is measured on held-out items. All slots share one seeded
train/test split of the items.

The probe: features standardised with the training set's mean and standard deviation, weights
and bias from zero (the problem is convex, so there is no random start), loss = mean
cross-entropy + ``l2 / 2 * ||W||^2`` (bias not penalised), minimised full-batch with L-BFGS
(strong Wolfe line search) in float64 on the CPU. ``slot_probes`` fits with one intra-op thread by
default: each step is a small matrix product, and on a busy machine extra threads mostly wait.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

__all__ = ["LinearProbe", "SlotProbeResult", "fit_linear_probe", "intra_op_threads", "slot_probes", "split_indices"]


@dataclass(frozen=True)
class LinearProbe:
    """A fitted multinomial logistic regression on standardised features."""

    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        standardised = (features.double() - self.mean) / self.std
        return standardised @ self.weight + self.bias

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Class index per row (ties go to the lower index)."""
        return self.logits(features).argmax(dim=1)


@dataclass(frozen=True)
class SlotProbeResult:
    """Held-out accuracy of one linear probe per object slot."""

    accuracies: tuple[float, ...]
    train_accuracies: tuple[float, ...]
    majority: tuple[float, ...]
    """Test accuracy of always answering the slot's most frequent training label."""
    chance: float
    """``1 / num_classes``: the expected accuracy of a uniform guess."""
    train_size: int
    test_size: int

    def to_json(self) -> dict:
        return {"accuracies": list(self.accuracies), "train_accuracies": list(self.train_accuracies),
                "majority": list(self.majority), "chance": self.chance, "train_size": self.train_size,
                "test_size": self.test_size}  # fmt: skip


def split_indices(count: int, *, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random ``(train, test)`` split of ``range(count)``; the test part has ``round(count * f)`` (>= 1)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    test_size = max(1, round(count * test_fraction))
    if count - test_size < 2:
        raise ValueError(f"{count} items leave fewer than 2 to train on with test_fraction={test_fraction}")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[test_size:].sort().values, order[:test_size].sort().values


def fit_linear_probe(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, *, l2: float = 1e-3, max_iter: int = 500
) -> LinearProbe:
    """Fit the probe described in the module docstring; deterministic for given inputs."""
    if l2 < 0:
        raise ValueError(f"l2 must be non-negative, got {l2}")
    x = features.detach().double().cpu()
    y = labels.detach().long().cpu()
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"expected features [N, D] and labels [N], got {tuple(x.shape)} and {tuple(y.shape)}")
    if y.numel() and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    mean = x.mean(dim=0)
    std = x.std(dim=0, unbiased=False).clamp_min(1e-12)
    z = (x - mean) / std
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-9,
        tolerance_change=1e-12, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(z @ weight + bias, y) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return LinearProbe(mean, std, weight.detach(), bias.detach())


def slot_probes(
    embeddings: torch.Tensor,
    slot_objects: torch.Tensor | np.ndarray,
    num_classes: int,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    l2: float = 1e-3,
    max_iter: int = 500,
    threads: int | None = 1,
    progress: bool = False,
    desc: str = "linear probes",
) -> SlotProbeResult:
    """One probe per column of ``slot_objects`` (``[items, slots]`` vocabulary indices).

    ``threads``: torch intra-op threads while fitting (restored afterwards); ``None`` keeps torch's.
    """
    objects = torch.as_tensor(np.asarray(slot_objects), dtype=torch.long)
    if objects.ndim != 2 or objects.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"slot_objects must be [items, slots] with {embeddings.shape[0]} rows, got {tuple(objects.shape)}"
        )
    train, test = split_indices(embeddings.shape[0], test_fraction=test_fraction, seed=seed)
    features = embeddings.detach().double().cpu()
    accuracies, train_accuracies, majority = [], [], []
    for slot in tqdm(range(objects.shape[1]), desc=desc, disable=not progress, leave=False):
        labels = objects[:, slot]
        with intra_op_threads(threads):
            probe = fit_linear_probe(features[train], labels[train], num_classes, l2=l2, max_iter=max_iter)
        accuracies.append(_accuracy(probe.predict(features[test]), labels[test]))
        train_accuracies.append(_accuracy(probe.predict(features[train]), labels[train]))
        most_frequent = torch.bincount(labels[train], minlength=num_classes).argmax()
        majority.append(_accuracy(most_frequent.expand(len(test)), labels[test]))
    return SlotProbeResult(
        tuple(accuracies), tuple(train_accuracies), tuple(majority), 1.0 / num_classes, len(train), len(test)
    )


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (``None``: unchanged), restored afterwards."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predicted == labels).double().mean())
