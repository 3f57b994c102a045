"""Less activation memory for the same training maths: what the transformer MLPs keep for the backward.

Per token and layer a transformers ``CLIPMLP`` leaves three ``4 x width`` tensors for the backward:
the ``fc1`` output and ``sigmoid(1.702 x)`` (saved by Quick-GELU) and the activation's output (saved
by ``fc2``), the bulk of a layer's activations. :func:`use_lean_activations` cuts that to one:

* :class:`LeanQuickGELU` saves only its input and recomputes the sigmoid in the backward;
* :class:`LeanMLP` does not keep ``fc2``'s input: a saved-tensor hook replaces it by a note to
  recompute ``act(fc1 output)`` (an elementwise op on a tensor the activation keeps anyway) when the
  backward needs it. The backward's kernels and inputs are unchanged, so values and gradients are
  bit-identical;
* ``recompute_fc1=True`` (the ``recompute_mlp`` knob) also drops the ``fc1`` output and recomputes
  it from ``fc1``'s input (which ``fc1`` keeps anyway): one more matmul per MLP in the backward
  (selective activation recomputation, not whole-layer gradient checkpointing).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn
from transformers.activations import QuickGELUActivation

__all__ = ["LeanMLP", "LeanQuickGELU", "use_lean_activations"]


class _QuickGELUFunction(torch.autograd.Function):
    """``x * sigmoid(1.702 x)`` saving only ``x``; the backward recomputes the sigmoid.

    Autograd on the plain expression saves two tensors of the MLP's width, ``x`` and ``sigmoid(1.702 x)``.
    The backward below runs the same kernels as autograd's, so values and gradients are bit-identical.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return _quick_gelu(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        sigmoid = torch.sigmoid(1.702 * x)
        return grad * sigmoid + torch.ops.aten.sigmoid_backward(grad * x, sigmoid) * 1.702


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class LeanQuickGELU(nn.Module):
    """Quick-GELU (OpenAI CLIP's activation) that keeps only its input for the backward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _QuickGELUFunction.apply(x)


class _Recompute:
    """What a saved-tensor hook keeps instead of a tensor: how to rebuild it, and its view geometry."""

    def __init__(self, rebuild: Callable[[], torch.Tensor], saved: torch.Tensor, base_offset: int) -> None:
        self.rebuild = rebuild
        self.geometry = (saved.size(), saved.stride(), saved.storage_offset() - base_offset)

    def __call__(self) -> torch.Tensor:
        size, stride, offset = self.geometry
        return self.rebuild().as_strided(size, stride, offset)


def _storage(tensor: torch.Tensor) -> tuple[int, int]:
    """(address of the storage, offset into it): identifies a tensor without keeping it alive."""
    return tensor.untyped_storage().data_ptr(), tensor.storage_offset()


def _unpack(saved):
    return saved() if isinstance(saved, _Recompute) else saved


class LeanMLP(nn.Module):
    """``fc2(act(fc1(x)))`` that does not keep ``act``'s output (nor, with ``recompute_fc1``, ``fc1``'s) alive.

    Holds the same ``fc1`` / ``fc2`` modules as the ``CLIPMLP`` it replaces, so the state dict is unchanged.
    ``act`` must be elementwise and deterministic (Quick-GELU, GELU): its output is recomputed in the backward.
    """

    def __init__(self, fc1: nn.Linear, activation_fn: nn.Module, fc2: nn.Linear, *, recompute_fc1: bool = False):
        super().__init__()
        self.fc1, self.activation_fn, self.fc2 = fc1, activation_fn, fc2
        self.recompute_fc1 = recompute_fc1

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() or torch.compiler.is_compiling():
            # compiled (``compile_towers``): the hooks below cannot be traced (storage addresses); the compiler's
            # partitioner picks what the backward keeps (more than the hooks do: BENCHMARKS.md)
            return self.fc2(self.activation_fn(self.fc1(hidden_states)))
        device_type = hidden_states.device.type
        autocast = torch.is_autocast_enabled(device_type)
        dtype = torch.get_autocast_dtype(device_type)
        if autocast and hidden_states.is_floating_point():
            hidden_states = hidden_states.to(dtype)  # the cast fc1 would make: the tensor it keeps, named here
        fc1_out = self.fc1(hidden_states)
        # the rebuilders hold only what fc1 / the activation keep anyway (fc1's input; its output unless recomputed)
        fc1_again = functools.partial(_under_autocast, self.fc1, hidden_states, device_type, dtype, autocast)
        fc1_value = fc1_again if self.recompute_fc1 else functools.partial(_given, fc1_out)
        activated_again = functools.partial(_chain, self.activation_fn, fc1_value)
        # the graph keeps the hooks alive: they must know the tensors to replace by address only
        replaced = {_storage(fc1_out)[0]: (fc1_again, _storage(fc1_out)[1])} if self.recompute_fc1 else {}

        def pack(tensor: torch.Tensor):
            address = tensor.untyped_storage().data_ptr()
            if address in replaced:
                rebuild, base_offset = replaced[address]
                return _Recompute(rebuild, tensor, base_offset)
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
            activated = self.activation_fn(fc1_out)
            address, offset = _storage(activated)
            replaced[address] = (activated_again, offset)
            return self.fc2(activated)


def _under_autocast(function, value, device_type: str, dtype: torch.dtype, enabled: bool) -> torch.Tensor:
    with torch.autocast(device_type, dtype=dtype, enabled=enabled):
        return function(value)


def _given(value: torch.Tensor) -> torch.Tensor:
    return value


def _chain(outer, inner) -> torch.Tensor:
    return outer(inner())


def use_lean_activations(model: nn.Module, *, mlps: bool = True, recompute_fc1: bool = False) -> int:
    """Make ``model``'s transformer MLPs keep less for the backward; returns how many Quick-GELUs were swapped.

    Every transformers ``QuickGELUActivation`` becomes :class:`LeanQuickGELU`; with ``mlps`` every module
    with ``fc1``, ``activation_fn`` and ``fc2`` (transformers' ``CLIPMLP``) becomes a :class:`LeanMLP`
    (leave ``mlps`` off under gradient checkpointing, which keeps only each layer's input anyway).
    Same values and gradients; ``recompute_fc1`` adds one matmul per MLP to the backward.

    Args:
        model: any module holding CLIP encoder layers (a ``CLIPModel``, a tower, one layer).
        mlps: also stop the MLPs keeping the activation's output (and, with ``recompute_fc1``, ``fc1``'s).
        recompute_fc1: recompute ``fc1`` in the backward instead of keeping its output.
    """
    swapped = 0
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, QuickGELUActivation):
                setattr(module, name, LeanQuickGELU())
                swapped += 1
    if mlps:
        for module in list(model.modules()):
            for name, child in module.named_children():
                if not isinstance(child, LeanMLP) and all(hasattr(child, a) for a in ("fc1", "activation_fn", "fc2")):
                    lean = LeanMLP(child.fc1, child.activation_fn, child.fc2, recompute_fc1=recompute_fc1)
                    setattr(module, name, lean)
    return swapped
