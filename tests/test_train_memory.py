"""Training-step memory: lean Quick-GELU (same values, fewer saved tensors) and the hidden states a step keeps."""

from __future__ import annotations

import pytest
import torch
from test_train_loop import _tiny_clip
from torch._C._profiler import _EventType
from torch.profiler import ProfilerActivity, profile
from transformers.activations import QuickGELUActivation

from train_encoder.activation_memory import LeanMLP
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


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
@pytest.mark.parametrize("recompute_fc1", [False, True], ids=["keep-fc1", "recompute-fc1"])
def test_use_lean_activations_swaps_every_mlp_and_keeps_the_model_exact(autocast, recompute_fc1):
    plain, lean = _tiny_clip().train(), _tiny_clip().train()
    assert use_lean_activations(lean, recompute_fc1=recompute_fc1) == 4  # 2 text + 2 vision MLPs
    assert not any(isinstance(m, QuickGELUActivation) for m in lean.modules())
    assert sum(isinstance(m, LeanMLP) for m in lean.modules()) == 4
    assert plain.state_dict().keys() == lean.state_dict().keys()
    ids = torch.randint(1, 49000, (3, 77), generator=torch.Generator().manual_seed(0))
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for model in (plain, lean):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
        out.loss.backward()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        assert torch.equal(plain(input_ids=ids, pixel_values=pixels).logits_per_image,
                           lean(input_ids=ids, pixel_values=pixels).logits_per_image)  # fmt: skip
    for (name, a), (_, b) in zip(plain.named_parameters(), lean.named_parameters(), strict=True):
        assert torch.equal(a.grad, b.grad), name


def _bytes_held_after(function) -> int:
    """Bytes allocated and not yet freed when ``function()`` returns (its output and what it saved), from the
    profiler's allocation events, so that tensors kept by any saved-tensor hook are counted too."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        output = function()
    events, held = list(profiler.profiler.kineto_results.experimental_event_tree()), 0
    while events:
        event = events.pop()
        if event.tag == _EventType.Allocation:
            held += event.extra_fields.alloc_size
        events.extend(event.children)
    del output
    return held


@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_lean_mlp_keeps_one_wide_tensor_or_none(autocast):
    """Plain CLIPMLP keeps three 4 x width tensors (fc1 out, sigmoid, fc2 in), lean one, recompute_fc1 none."""
    layer = _tiny_clip().text_model.encoder.layers[0].train()  # width 32, fc1 to 64
    x = torch.randn(8, 16, 32, requires_grad=True)
    wide = 8 * 16 * 64 * (2 if autocast else 4)

    def held() -> int:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return _bytes_held_after(lambda: layer.mlp(x))

    plain = held()
    use_lean_activations(layer)
    kept = held()
    layer.mlp.recompute_fc1 = True
    recomputed = held()
    assert 0 <= plain - kept - 2 * wide < 64  # the sigmoid and fc2's input (plain also keeps a scalar or two)
    assert kept - recomputed == wide  # fc1's output


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
