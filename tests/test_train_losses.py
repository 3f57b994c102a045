"""Two-caption training losses (train_encoder.losses): PCA, contrastive loss, gathering, distillation."""

from __future__ import annotations

import datetime
import math
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from train_encoder.losses import (
    LossParts,
    all_gather_with_grad,
    contrastive_loss,
    distillation_loss,
    primary_components,
    two_caption_loss,
)
from train_encoder.token_states import hidden_state_drift, real_token_mask

S, E = 49406, 49407


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _features(rows: int, width: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """L2-normalised features with a decaying spectrum (well separated principal directions)."""
    generator = torch.Generator().manual_seed(seed)
    raw = torch.randn(rows, width, generator=generator, dtype=torch.float64)
    raw = raw * torch.logspace(0, -2, width, dtype=torch.float64) + torch.linspace(
        -0.5, 0.5, width, dtype=torch.float64
    )
    return F.normalize(raw, dim=-1).to(dtype)


def _numpy_pca(features: np.ndarray, k: int) -> np.ndarray:
    x = features.astype(np.float64)
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[:k].T
    return (x - mean) @ basis @ basis.T + mean


# --- primary components ----------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "width", "k"), [(64, 48, 8), (32, 96, 16), (40, 24, 23)])
def test_primary_components_match_a_float64_numpy_reference(rows, width, k):
    features = _features(rows, width)
    result = primary_components(features, k)
    expected = _numpy_pca(features.numpy(), k)
    assert result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), expected, atol=2e-6)
    np.testing.assert_allclose(result.mean(0).numpy(), features.mean(0).numpy(), atol=1e-6)  # mean added back
    assert not torch.allclose(result.norm(dim=-1), torch.ones(rows))  # not re-normalised


def test_primary_components_keep_the_input_dtype_and_compute_in_float32():
    features = _features(16, 8).to(torch.bfloat16)
    result = primary_components(features, 3)
    assert result.dtype == torch.bfloat16
    expected = _numpy_pca(features.float().numpy(), 3)
    np.testing.assert_allclose(result.float().numpy(), expected, atol=1e-2)


def test_primary_components_at_the_rank_bound_are_the_input():
    features = _features(8, 16, dtype=torch.float64)  # centred rank <= 7
    assert primary_components(features, 7) is features
    np.testing.assert_allclose(_numpy_pca(features.numpy(), 7), features.numpy(), atol=1e-12)
    assert not torch.allclose(primary_components(features, 6), features)


def test_primary_components_of_one_or_no_feature_are_the_input():
    for rows in (1, 0):
        features = torch.randn(rows, 4)
        assert primary_components(features, 2) is features


def test_primary_components_are_differentiable():
    features = _features(7, 5, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: primary_components(x, 2), (features,))
    features32 = _features(64, 48).requires_grad_()
    primary_components(features32, 32).square().sum().backward()
    assert features32.grad is not None and torch.isfinite(features32.grad).all()


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_primary_components_refuse_non_finite_features(bad):
    features = _features(16, 8)
    features[3, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        primary_components(features, 4)


def test_svd_non_convergence_retries_in_float64(monkeypatch):
    real_svd = torch.linalg.svd
    calls = []

    def float32_fails(matrix, *args, **kwargs):
        calls.append(matrix.dtype)
        if matrix.dtype == torch.float32:
            raise torch.linalg.LinAlgError("simulated: failed to converge")
        return real_svd(matrix, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "svd", float32_fails)
    features = _features(32, 16)
    result = primary_components(features, 4)
    assert calls == [torch.float32, torch.float64]
    assert result.dtype == torch.float32
    np.testing.assert_allclose(result.numpy(), _numpy_pca(features.numpy(), 4), atol=2e-6)


def test_svd_that_never_converges_raises_a_clear_error(monkeypatch):
    def never(matrix, *args, **kwargs):
        raise torch.linalg.LinAlgError("simulated")

    monkeypatch.setattr(torch.linalg, "svd", never)
    with pytest.raises(RuntimeError, match="did not converge, even in float64"):
        primary_components(_features(32, 16), 4)


@pytest.mark.parametrize(
    ("features", "k", "error"),
    [
        (torch.zeros(4), 2, ValueError),
        (torch.zeros(4, 4, dtype=torch.int64), 2, TypeError),
        (torch.zeros(4, 4), 0, ValueError),
    ],
)
def test_primary_components_input_errors(features, k, error):
    with pytest.raises(error):
        primary_components(features, k)


# --- contrastive loss ------------------------------------------------------------------------------


def _smoothed_ce(row: list[float], target: int, smoothing: float) -> float:
    lse = math.log(sum(math.exp(value) for value in row))
    weights = [smoothing / len(row) + (1 - smoothing) * (j == target) for j in range(len(row))]
    return sum(weight * (lse - value) for weight, value in zip(weights, row, strict=True))


def test_label_smoothing_against_a_hand_computed_2x2_case():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    per_image = [[2.0, 1.2], [0.0, 1.6]]  # 2 * image @ text.T
    per_text = [[2.0, 0.0], [1.2, 1.6]]  # 2 * text @ image.T
    for smoothing in (0.1, 0.0):
        expected = (
            sum(_smoothed_ce(per_image[i], i, smoothing) for i in range(2)) / 2
            + sum(_smoothed_ce(per_text[i], i, smoothing) for i in range(2)) / 2
        ) / 2
        got = contrastive_loss(image, text, torch.tensor(2.0), label_smoothing=smoothing)
        assert got.item() == pytest.approx(expected, abs=1e-6)
    assert contrastive_loss(image, text, 2.0).item() == pytest.approx(
        (_smoothed_ce(per_image[0], 0, 0.1) + _smoothed_ce(per_image[1], 1, 0.1)) / 4
        + (_smoothed_ce(per_text[0], 0, 0.1) + _smoothed_ce(per_text[1], 1, 0.1)) / 4,
        abs=1e-6,
    )  # 0.1 is the default


def test_gather_is_the_identity_without_a_process_group():
    assert not dist.is_initialized()
    features = torch.randn(4, 3, requires_grad=True)
    assert all_gather_with_grad(features) is features
    loss = contrastive_loss(features, features.detach().flip(0), 10.0)
    assert loss.item() == pytest.approx(
        contrastive_loss(features, features.detach().flip(0), 10.0, gather=False).item()
    )
    loss.backward()
    assert features.grad is not None


def _loss_of(which: str, image: torch.Tensor, text: torch.Tensor, *, gather: bool = True) -> torch.Tensor:
    if which == "contrastive":
        return contrastive_loss(image, text, 10.0, gather=gather)
    # two-caption loss: short captions = the texts reversed in width; PCA of 2 components over the global batch
    return two_caption_loss(image, text, text.flip(-1), 10.0, short_weight=0.3, pca_components=2, gather=gather).total


def _gather_worker(
    rank: int, sizes: list[int], init_file: str, images: torch.Tensor, texts: torch.Tensor, out, which: str
) -> None:
    torch.set_num_threads(1)  # a forked child must not reuse the parent's OpenMP pool (it hangs)
    world, timeout = len(sizes), datetime.timedelta(seconds=30)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timeout)
    try:
        start = sum(sizes[:rank])
        image = images[start : start + sizes[rank]].clone().requires_grad_()
        text = texts[start : start + sizes[rank]].clone().requires_grad_()
        loss = _loss_of(which, image, text)
        # DDP averages gradients over processes; weighting by the local share makes that the global mean.
        (loss * sizes[rank] / sum(sizes) * world).backward()
        out.put((rank, loss.item(), image.grad.tolist(), text.grad.tolist()))  # no shared-memory tensors
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(sys.platform != "linux", reason="forks two gloo processes")
@pytest.mark.parametrize("which", ["contrastive", "two_caption"])
@pytest.mark.parametrize("sizes", [[4, 4], [5, 3], [6, 0]], ids=["equal", "unequal", "empty-rank"])
def test_gather_with_grad_across_two_processes_equals_the_global_loss(tmp_path, sizes, which):
    world, total = len(sizes), sum(sizes)
    images = F.normalize(torch.randn(total, 6, generator=torch.Generator().manual_seed(0)), dim=-1)
    texts = F.normalize(images + 0.3 * torch.randn(total, 6, generator=torch.Generator().manual_seed(1)), dim=-1)
    context = mp.get_context("fork")  # spawn would re-import torch in each child (seconds)
    out = context.Queue()
    processes = [
        context.Process(target=_gather_worker, args=(rank, sizes, str(tmp_path / "init"), images, texts, out, which))
        for rank in range(world)
    ]
    for process in processes:
        process.start()
    try:
        results = sorted((out.get(timeout=60) for _ in range(world)), key=lambda result: result[0])
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0] * world

    image, text = images.clone().requires_grad_(), texts.clone().requires_grad_()
    global_loss = _loss_of(which, image, text, gather=False)
    global_loss.backward()
    # Labels offset by the lower ranks' rows: the share-weighted local losses add up to the global
    # loss. all_gather's backward sums every process's loss into each slice, which DDP then averages.
    weighted = sum(loss * size / total for (_, loss, _, _), size in zip(results, sizes, strict=True))
    assert weighted == pytest.approx(global_loss.item(), abs=1e-6)
    torch.testing.assert_close(torch.tensor([row for _, _, grad, _ in results for row in grad]), world * image.grad)
    torch.testing.assert_close(torch.tensor([row for _, _, _, grad in results for row in grad]), world * text.grad)


def test_contrastive_loss_input_errors():
    with pytest.raises(ValueError, match="same shape"):
        contrastive_loss(torch.randn(4, 3), torch.randn(5, 3), 1.0)
    with pytest.raises(ValueError, match="label_smoothing"):
        contrastive_loss(torch.randn(4, 3), torch.randn(4, 3), 1.0, label_smoothing=1.0)


# --- combined loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("short_weight", [0.1, 0.5, 0.0, 1.0])
def test_two_caption_loss_weighting(short_weight):
    generator = torch.Generator().manual_seed(0)
    image, long, short = (torch.randn(48, 40, generator=generator, requires_grad=True) for _ in range(3))
    scale = torch.tensor(100.0)
    parts = two_caption_loss(image, long, short, scale, short_weight=short_weight, pca_components=8)
    normalised = F.normalize(image, dim=-1)
    expected_long = contrastive_loss(normalised, F.normalize(long, dim=-1), scale)
    expected_short = contrastive_loss(primary_components(normalised, 8), F.normalize(short, dim=-1), scale)
    torch.testing.assert_close(parts.long, expected_long)
    torch.testing.assert_close(parts.short, expected_short)
    torch.testing.assert_close(parts.total, short_weight * expected_short + (1 - short_weight) * expected_long)
    assert parts.short.item() != pytest.approx(parts.long.item())
    parts.total.backward()
    assert image.grad is not None
    assert (long.grad is not None and long.grad.abs().sum() > 0) == (short_weight < 1)
    assert (short.grad is not None and short.grad.abs().sum() > 0) == (short_weight > 0)


def test_two_caption_loss_without_pca_uses_the_image_features():
    image, long, short = (torch.randn(16, 8, generator=torch.Generator().manual_seed(i)) for i in range(3))
    parts = two_caption_loss(image, long, short, 10.0, short_weight=0.1, pca_components=None)
    expected = contrastive_loss(F.normalize(image, dim=-1), F.normalize(short, dim=-1), 10.0)
    torch.testing.assert_close(parts.short, expected)
    assert isinstance(parts, LossParts)
    assert set(parts.as_floats()) == {"loss", "loss_long", "loss_short"}


def test_two_caption_loss_input_errors():
    features = torch.randn(8, 4)
    with pytest.raises(ValueError, match="short_weight"):
        two_caption_loss(features, features, features, 1.0, short_weight=1.5)
    with pytest.raises(ValueError, match="short_text_features"):
        two_caption_loss(features, features, torch.randn(7, 4), 1.0, short_weight=0.1)


# --- SD-compatibility terms ------------------------------------------------------------------------


def test_real_token_mask():
    ids = torch.tensor([[S, 5, E, 0, 0], [S, 5, 6, 7, 8], [S, E, 0, E, 0]])
    assert real_token_mask(ids).tolist() == [
        [True, True, True, False, False],
        [True, True, True, True, True],  # no EOT: a cut caption, every position is text
        [True, True, False, False, False],
    ]


def test_distillation_loss_counts_real_tokens_of_the_first_77_positions():
    ids = torch.zeros(2, 100, dtype=torch.int64)
    ids[0, :3] = torch.tensor([S, 5, E])  # 3 real tokens
    ids[1] = torch.arange(100) + 1000  # no EOT in the first 77: all 77 count
    reference = torch.zeros(2, 77, 4)
    reference[..., 0] = 1.0
    hidden = torch.zeros(2, 100, 4)
    hidden[..., 0] = 1.0
    assert distillation_loss(hidden, reference, ids).item() == 0.0
    hidden[0, 1] = torch.tensor([0.0, 3.0, 0.0, 0.0])  # orthogonal at a real token: 1 - cos = 1
    hidden[1, 10] = torch.tensor([-2.0, 0.0, 0.0, 0.0])  # opposite: 1 - cos = 2
    expected = (1.0 + 2.0) / (3 + 77)
    assert distillation_loss(hidden, reference, ids).item() == pytest.approx(expected)
    hidden[0, 3:] = torch.randn(97, 4)  # pads after EOT
    hidden[1, 77:] = torch.randn(23, 4)  # beyond the SD positions
    assert distillation_loss(hidden, reference, ids).item() == pytest.approx(expected)


def test_distillation_loss_trains_only_the_new_encoder():
    ids = torch.tensor([[S, 5, 6, E, 0, 0]])
    hidden = torch.randn(1, 6, 3, requires_grad=True)
    reference = torch.randn(1, 6, 3, requires_grad=True)
    distillation_loss(hidden, reference, ids, positions=6).backward()
    assert hidden.grad is not None and hidden.grad[0, 4:].abs().sum() == 0
    assert reference.grad is None


def test_distillation_loss_shape_errors():
    ids = torch.full((1, 77), 5)
    with pytest.raises(ValueError, match="reference_hidden_states"):
        distillation_loss(torch.randn(1, 248, 8), torch.randn(1, 10, 8), ids)
    with pytest.raises(ValueError, match="share batch and width"):
        distillation_loss(torch.randn(1, 248, 8), torch.randn(1, 77, 6), ids)


def test_hidden_state_drift_per_position():
    new = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    ref = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 1.0]]])  # only 2 positions
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    drift = hidden_state_drift(new, ref, mask)
    assert drift.shape == (2,)
    assert drift[0].item() == pytest.approx(1.0)  # both rows identical in direction
    assert drift[1].item() == pytest.approx(0.0)  # only row 0 counts: orthogonal
    drift = hidden_state_drift(new, ref, torch.tensor([[1, 0, 0], [1, 0, 0]]))
    assert math.isnan(drift[1].item())  # no real token there
    with pytest.raises(ValueError, match="attention_mask"):
        hidden_state_drift(new, ref, torch.ones(2, 1))
