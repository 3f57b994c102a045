"""Training-step memory: lean Quick-GELU (same values, fewer saved tensors) and the hidden states a step keeps."""

from __future__ import annotations

import pytest
import torch
from test_train_loop import _tiny_clip
from transformers.activations import QuickGELUActivation

from train_encoder.model_setup import LeanQuickGELU, TwoCaptionCLIP, use_lean_activations


def _saved_bytes(function, x: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for the backward of ``function(x)``."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function(x)
    return sum(storages.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_lean_quick_gelu_matches_the_plain_one_bit_for_bit_and_saves_half(dtype):
    x = (torch.randn(4, 7, 64, generator=torch.Generator().manual_seed(0)) * 4).to(dtype)
    grad = torch.randn(4, 7, 64, generator=torch.Generator().manual_seed(1)).to(dtype)
    outputs, gradients = [], []
    for activation in (QuickGELUActivation(), LeanQuickGELU()):
        leaf = x.clone().requires_grad_(True)
        out = activation(leaf)
        out.backward(grad)
        outputs.append(out.detach())
        gradients.append(leaf.grad)
    assert torch.equal(outputs[0], outputs[1])
    assert torch.equal(gradients[0], gradients[1])
    leaf = x.clone().requires_grad_(True)
    plain, lean = _saved_bytes(QuickGELUActivation(), leaf), _saved_bytes(LeanQuickGELU(), leaf)
    assert plain == 2 * x.numel() * x.element_size()  # the input and the sigmoid
    assert lean == x.numel() * x.element_size()  # the input only


def test_use_lean_activations_swaps_every_quick_gelu_and_keeps_the_model_exact():
    plain, lean = _tiny_clip().train(), _tiny_clip().train()
    assert use_lean_activations(lean) == 4  # 2 text + 2 vision MLPs
    assert not any(isinstance(m, QuickGELUActivation) for m in lean.modules())
    assert plain.state_dict().keys() == lean.state_dict().keys()
    ids = torch.randint(1, 49000, (3, 77), generator=torch.Generator().manual_seed(0))
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for model in (plain, lean):
        out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
        out.loss.backward()
    assert torch.equal(plain(input_ids=ids, pixel_values=pixels).logits_per_image,
                       lean(input_ids=ids, pixel_values=pixels).logits_per_image)  # fmt: skip
    for (name, a), (_, b) in zip(plain.named_parameters(), lean.named_parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


def test_two_caption_forward_keeps_only_the_hidden_states_it_is_asked_for():
    model = _tiny_clip().train()
    ids = torch.randint(1, 49000, (2, 77), generator=torch.Generator().manual_seed(0))
    pixels = torch.randn(2, 3, 32, 32)
    every = TwoCaptionCLIP(model)(pixels, ids, ids)
    first = TwoCaptionCLIP(model, hidden_positions=20)(pixels, ids, ids)
    none = TwoCaptionCLIP(model, hidden_positions=0)(pixels, ids, ids)
    assert every.long_hidden_states.shape == (2, 77, 32) and none.long_hidden_states is None
    assert first.long_hidden_states.shape == (2, 20, 32) and first.long_hidden_states.is_contiguous()
    assert torch.equal(first.long_hidden_states, every.long_hidden_states[:, :20])
    assert torch.equal(none.long_text_features, every.long_text_features)
