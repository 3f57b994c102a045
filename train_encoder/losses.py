"""Losses of two-caption training (Long-CLIP, DeBias-CLIP) and the SD-compatibility terms.

* ``primary_components``: Long-CLIP's PCA of the batch of image features (the short branch's target);
* ``contrastive_loss``: symmetric cross-entropy with label smoothing, features all-gathered across
  processes with gradient, local rows against global columns (open_clip's ``ClipLoss`` with
  ``local_loss=True, gather_with_grad=True``; Long-CLIP's loss);
* ``two_caption_loss``: ``L = λ·L_short + (1-λ)·L_long``;
* ``distillation_loss``: how far the fine-tuned encoder's per-token hidden states moved from the
  frozen original's on the first 77 positions (what SD's UNet reads; the report of that drift is
  :func:`train_encoder.token_states.hidden_state_drift`).

``logit_scale`` is always the multiplier (``model.logit_scale.exp()``), as in open_clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .token_states import SD_CONTEXT_LENGTH, real_token_mask

__all__ = [
    "LossParts",
    "all_gather_with_grad",
    "contrastive_loss",
    "distillation_loss",
    "primary_components",
    "two_caption_loss",
]


def primary_components(image_features: torch.Tensor, k: int = 32) -> torch.Tensor:
    """Long-CLIP's "primary component" features: the batch's PCA reconstruction from ``k`` components.

    Centre the rows (the batch), project on the top-``k`` right singular vectors, project back and
    add the mean; the result is not re-normalised. Pass L2-normalised features, as Long-CLIP does
    (nothing is normalised here). Differentiable through the SVD, as Long-CLIP's is (it does not
    detach). The SVD runs in float32 (float64 for float64 input), outside autocast; the result has
    the input's dtype.

    Exact ``torch.linalg.svd`` rather than ``torch.svd_lowrank``: the matrix is only
    ``batch x width`` (milliseconds), and the randomised low-rank SVD is approximate and would draw
    from the global RNG. When ``k`` reaches the rank bound (``min(batch - 1, width)``; also a batch
    of one) the reconstruction is the input itself, which is returned without an SVD (whose gradient
    would divide by near-zero singular values there).

    Raises ``ValueError`` on NaN/inf features (the SVD cannot converge on them). If the SVD fails to
    converge it is retried in float64; a second failure raises ``RuntimeError``.
    """
    if not isinstance(image_features, torch.Tensor) or image_features.ndim != 2:
        got = tuple(image_features.shape) if isinstance(image_features, torch.Tensor) else type(image_features).__name__
        raise ValueError(f"image_features must be a [batch, width] tensor, got {got}")
    if not image_features.is_floating_point():
        raise TypeError(f"image_features must be floating point, got {image_features.dtype}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (the number of principal components) must be an int >= 1, got {k!r}")
    rows, width = image_features.shape
    if not bool(torch.isfinite(image_features).all()):
        raise ValueError(
            "image_features hold NaN or inf, so the PCA's SVD cannot converge; the image tower diverged "
            "(lower the learning rate, check AMP loss scaling) or a bad image reached the batch"
        )
    if k >= min(rows - 1, width):
        return image_features
    dtype = torch.float64 if image_features.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=image_features.device.type, enabled=False):
        features = image_features.to(dtype)
        mean = features.mean(dim=0, keepdim=True)
        centred = features - mean
        basis = _top_right_singular_vectors(centred, k).to(dtype)
        reconstruction = (centred @ basis) @ basis.T + mean
    return reconstruction.to(image_features.dtype)


def _top_right_singular_vectors(centred: torch.Tensor, k: int) -> torch.Tensor:
    """``[width, k]`` top right singular vectors; float64 retry if the SVD fails to converge."""
    for attempt in (centred, centred.double()):
        try:
            _, _, vh = torch.linalg.svd(attempt, full_matrices=False)
        except torch.linalg.LinAlgError:
            continue
        basis = vh[:k].T
        if bool(torch.isfinite(basis).all()):
            return basis
    raise RuntimeError(
        "the SVD of the centred image features did not converge, even in float64; the features are "
        "ill-conditioned (many identical images in the batch?); skip this batch or lower pca_components"
    )


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0 (rank order), gradients flowing back to each.

    Uses ``torch.distributed.nn.functional.all_gather`` when a process group is initialised, and is
    the identity otherwise. Processes may hold different numbers of rows (a batch that lost bad
    samples, even none): rows are padded to the largest count for the collective, then dropped.
    Every process must call it, in the same order.
    """
    return _gather(tensor)[0]


def _gather(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All processes' rows and the index where this process's rows start among them."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor, 0
    from torch.distributed.nn.functional import all_gather

    count = torch.tensor([tensor.shape[0]], dtype=torch.int64, device=tensor.device)
    counts = [torch.empty_like(count) for _ in range(dist.get_world_size())]
    dist.all_gather(counts, count)
    sizes = [int(size) for size in counts]
    largest = max(sizes)
    if tensor.shape[0] < largest:
        tensor = torch.cat([tensor, tensor.new_zeros(largest - tensor.shape[0], *tensor.shape[1:])])
    parts = all_gather(tensor)
    if min(sizes) < largest:
        parts = [part[:size] for part, size in zip(parts, sizes, strict=True)]
    return torch.cat(parts, dim=0), sum(sizes[: dist.get_rank()])


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    *,
    label_smoothing: float = 0.1,
    gather: bool = True,
) -> torch.Tensor:
    """Symmetric CLIP loss, ``(CE(image->text) + CE(text->image)) / 2``, pair ``i`` matching ``i``.

    Features are used as given (normalise them first). With ``gather`` and a process group, local
    rows are scored against all processes' features (one collective for both towers) and the labels
    are offset by the rows of lower ranks, as open_clip's ``ClipLoss(local_loss=True,
    gather_with_grad=True)`` does; with equal batches the mean of the per-process losses is the
    global loss. A process with no rows returns a zero that still takes part in the backward pass.
    """
    _check_pair(image_features, text_features, "image_features", "text_features")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1), got {label_smoothing}")
    batch, width = image_features.shape
    all_images, all_texts, offset = image_features, text_features, 0
    if gather:
        both, offset = _gather(torch.cat([image_features, text_features], dim=1))
        all_images, all_texts = both[:, :width], both[:, width:]
    if batch == 0:  # a zero that keeps this process in the backward collectives
        return (all_images.sum() + all_texts.sum()) * 0.0
    logits_per_image = logit_scale * image_features @ all_texts.T
    logits_per_text = logit_scale * text_features @ all_images.T
    labels = torch.arange(offset, offset + batch, device=image_features.device)
    return (
        F.cross_entropy(logits_per_image, labels, label_smoothing=label_smoothing)
        + F.cross_entropy(logits_per_text, labels, label_smoothing=label_smoothing)
    ) / 2


@dataclass(frozen=True)
class LossParts:
    """``total = λ·short + (1-λ)·long``; ``long``/``short`` are the unweighted branch losses."""

    total: torch.Tensor
    long: torch.Tensor
    short: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """``{"loss", "loss_long", "loss_short"}`` as Python floats, for logging."""
        return {"loss": self.total.item(), "loss_long": self.long.item(), "loss_short": self.short.item()}


def two_caption_loss(
    image_features: torch.Tensor,
    long_text_features: torch.Tensor,
    short_text_features: torch.Tensor,
    logit_scale: torch.Tensor | float,
    *,
    short_weight: float,
    pca_components: int | None = 32,
    label_smoothing: float = 0.1,
    gather: bool = True,
) -> LossParts:
    """Long-CLIP / DeBias-CLIP loss ``L = λ·L_short + (1-λ)·L_long`` with ``λ = short_weight``.

    All features are L2-normalised here. Long branch: long captions vs image features. Short
    branch: short captions vs ``primary_components(image, pca_components)`` (``None``: the image
    features themselves). The PCA runs over the global batch (all processes' image features, gathered
    with gradient; on one process, the local batch), not per process as Long-CLIP's code does.
    """
    if not 0.0 <= short_weight <= 1.0:
        raise ValueError(f"short_weight (λ) must lie in [0, 1], got {short_weight}")
    _check_pair(image_features, long_text_features, "image_features", "long_text_features")
    _check_pair(image_features, short_text_features, "image_features", "short_text_features")
    images = F.normalize(image_features, dim=-1)
    long_texts = F.normalize(long_text_features, dim=-1)
    short_texts = F.normalize(short_text_features, dim=-1)
    short_images = images
    if pca_components is not None:
        # the PCA basis comes from the global batch (every process's rows, with gradient); each process keeps its rows
        everything, offset = _gather(images) if gather else (images, 0)
        short_images = primary_components(everything, pca_components)[offset : offset + images.shape[0]]
    loss_long = contrastive_loss(images, long_texts, logit_scale, label_smoothing=label_smoothing, gather=gather)
    loss_short = contrastive_loss(
        short_images, short_texts, logit_scale, label_smoothing=label_smoothing, gather=gather
    )
    total = short_weight * loss_short + (1.0 - short_weight) * loss_long
    return LossParts(total=total, long=loss_long, short=loss_short)


def distillation_loss(
    hidden_states: torch.Tensor,
    reference_hidden_states: torch.Tensor,
    input_ids: torch.Tensor,
    *,
    positions: int = SD_CONTEXT_LENGTH,
) -> torch.Tensor:
    """Mean ``1 - cosine`` between fine-tuned and frozen per-token hidden states on the first ``positions``.

    Keeps the encoder usable by a Stable Diffusion UNet trained on the original's 77 hidden states.
    Only real tokens count (SOT through the first EOT, ``real_token_mask``); a caption longer than
    ``positions`` counts all of them. With a causal text encoder a position's state depends only on
    the tokens before it, so the frozen 77-position encoder can be fed ``input_ids[:, :positions]``.
    Compute it on unaugmented (long) rows: the pads that token padding inserts count as tokens.
    The reference is detached.

    Cosine rather than MSE: CLIP's hidden states have a few huge-magnitude channels (and a large,
    text-independent SOT state) that would dominate an MSE, while the cosine weighs every token
    equally. The price: a change of a token's norm alone is not penalised.
    """
    reference = reference_hidden_states.detach()
    for name, states in (("hidden_states", hidden_states), ("reference_hidden_states", reference)):
        if states.ndim != 3 or states.shape[1] < positions:
            raise ValueError(f"{name} must be [batch, >= {positions} positions, width], got {tuple(states.shape)}")
    if input_ids.ndim != 2 or input_ids.shape[1] < positions or input_ids.shape[0] != hidden_states.shape[0]:
        raise ValueError(f"input_ids must be [batch, >= {positions}], got {tuple(input_ids.shape)}")
    if hidden_states.shape[0] != reference.shape[0] or hidden_states.shape[2] != reference.shape[2]:
        raise ValueError(
            f"hidden_states {tuple(hidden_states.shape)} and reference_hidden_states {tuple(reference.shape)} "
            "must share batch and width"
        )
    mask = real_token_mask(input_ids[:, :positions]).to(hidden_states.device)
    cosine = F.cosine_similarity(hidden_states[:, :positions].float(), reference[:, :positions].float(), dim=-1)
    return ((1.0 - cosine) * mask).sum() / mask.sum()


def _check_pair(first: torch.Tensor, second: torch.Tensor, first_name: str, second_name: str) -> None:
    for name, tensor in ((first_name, first), (second_name, second)):
        if not isinstance(tensor, torch.Tensor) or tensor.ndim != 2:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise ValueError(f"{name} must be a [batch, dim] tensor, got {got}")
    if first.shape != second.shape:
        raise ValueError(
            f"{first_name} {tuple(first.shape)} and {second_name} {tuple(second.shape)} must have the same shape "
            "(one text per image)"
        )
