"""The model a run trains: any CLIP source -> transformers ``CLIPModel``, stretched and prepared for training.

``build_model`` loads the source (HF folder or Hub id, OpenAI-layout / Long-CLIP / DeBias-CLIP
``.pt``, ``open_clip:`` spec) with :func:`debias_diffusion.load_clip_model`, stretches a
shorter position table with KPS, and applies Long-CLIP's training split: the first ``keep``
position rows stay exactly as they are (:class:`FrozenPositionRows`), the logit scale restarts
at 100, and towers can be frozen. :class:`TwoCaptionCLIP` is the single ``forward`` that DDP wraps
(images and both caption branches), so gradient synchronisation sees every parameter use.
``use_lean_activations`` (``activation_memory``) makes the MLPs keep a third of what autograd keeps for them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import CLIPModel

from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.errors import EncoderMismatchError
from debias_diffusion.image_preprocessing import ImagePreprocessing
from debias_diffusion.stretching import stretch_to_context_length
from debias_diffusion.text_model_layout import get_context_length, text_embeddings

from .activation_memory import LeanQuickGELU, use_lean_activations
from .config import TrainConfig
from .model_output import TwoCaptionOutput

__all__ = [
    "MAX_LOGIT_SCALE",
    "FrozenPositionRows",
    "LeanQuickGELU",
    "PreparedModel",
    "TwoCaptionCLIP",
    "build_model",
    "clamp_logit_scale",
    "compile_towers",
    "freeze_towers",
    "parameter_groups",
    "reset_logit_scale",
    "use_lean_activations",
]

MAX_LOGIT_SCALE = 100.0


class FrozenPositionRows:
    """Keeps rows ``[0, keep)`` of the text position table bit-identical during training.

    A gradient hook zeroes those rows' gradient (so Adam's moments and gradient clipping never see
    them) and :meth:`restore` copies the saved rows back after each optimizer step (AdamW's decoupled
    weight decay would otherwise shrink them). This is Long-CLIP's split of one frozen table for
    positions < 20 and one trainable table for the rest, kept in a single HF table.
    """

    def __init__(self, model: nn.Module, keep: int) -> None:
        self.table = text_embeddings(model).position_embedding.weight
        rows = self.table.shape[0]
        if not 0 < keep < rows:
            raise EncoderMismatchError(
                f"keep={keep} frozen position rows must lie in 1..{rows - 1} for a {rows}-row table"
            )
        self.keep = keep
        self.rows = self.table.detach()[:keep].clone()
        self._handle = self.table.register_hook(self._zero_frozen_rows)

    def _zero_frozen_rows(self, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[: self.keep] = 0
        return grad

    @torch.no_grad()
    def restore(self) -> None:
        """Copy the saved rows back (call after every optimizer step)."""
        if self.rows.device != self.table.device:
            self.rows = self.rows.to(self.table.device)
        self.table[: self.keep].copy_(self.rows)

    def unchanged(self) -> bool:
        """Whether the frozen rows still equal the saved ones bit for bit."""
        return torch.equal(self.table.detach()[: self.keep].to(self.rows.device), self.rows)

    def remove(self) -> None:
        self._handle.remove()


@dataclass
class PreparedModel:
    """What ``build_model`` returns: the model to train and what the run needs beside it."""

    model: CLIPModel
    preprocessing: ImagePreprocessing
    source: str
    source_context_length: int
    frozen_rows: FrozenPositionRows | None
    reference_text: nn.Module | None
    """The frozen source text tower (before stretching) for the distillation term, or ``None``."""


def build_model(config: TrainConfig) -> PreparedModel:
    """Load ``config.model`` on the CPU in float32 and prepare it as the config says."""
    loaded = load_clip_model(config.model, hidden_act=config.hidden_act)
    model = loaded.model
    source_context_length = get_context_length(model)
    reference = None
    if config.distill_weight > 0:
        reference = copy.deepcopy(model.text_model).eval().requires_grad_(False)
    stretch_to_context_length(model, config.stretch_to, keep=config.keep)
    model.train()
    freeze_towers(model, text=config.freeze_text, vision=config.freeze_vision)
    if config.logit_scale is not None:
        reset_logit_scale(model, config.logit_scale)
    frozen = None if config.freeze_text or config.keep == 0 else FrozenPositionRows(model, config.keep)
    if config.lean_activations:
        # checkpointing keeps only each layer's input: the MLPs' saved-tensor hooks would only get in its way
        use_lean_activations(model, mlps=not config.gradient_checkpointing, recompute_fc1=config.recompute_mlp)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return PreparedModel(model, loaded.preprocessing, loaded.source, source_context_length, frozen, reference)


def compile_towers(model: CLIPModel, backend: str = "inductor") -> None:
    """``torch.compile`` the vision and text towers in place (``nn.Module.compile``: the modules and their
    state-dict keys stay as they are, no ``_orig_mod.`` wrapper); the loss and the PCA stay eager.

    Call it after ``accelerator.prepare`` (accelerate's order: wrap for DDP, then compile). Compiled, the
    :class:`~train_encoder.activation_memory.LeanMLP` modules run the plain MLP and leave what the backward
    keeps to the compiler's partitioner (their saved-tensor hooks cannot be traced).
    """
    model.vision_model.compile(backend=backend)
    model.text_model.compile(backend=backend)


def freeze_towers(model: CLIPModel, *, text: bool = False, vision: bool = False) -> None:
    """Stop gradients to the text tower (+ projection) and/or the image tower (+ projection)."""
    if text:
        model.text_model.requires_grad_(False)
        model.text_projection.requires_grad_(False)
    if vision:
        model.vision_model.requires_grad_(False)
        model.visual_projection.requires_grad_(False)


def reset_logit_scale(model: CLIPModel, value: float = MAX_LOGIT_SCALE) -> None:
    """Set the logit scale so that ``logit_scale.exp() == value`` (Long-CLIP restarts at 100)."""
    with torch.no_grad():
        model.logit_scale.fill_(math.log(value))


def clamp_logit_scale(model: CLIPModel, maximum: float = MAX_LOGIT_SCALE) -> None:
    """Keep the multiplier in ``[1, maximum]``, as open_clip does after every step."""
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(maximum))


def parameter_groups(model: nn.Module, weight_decay: float, *, decay_all: bool = False) -> list[dict]:
    """AdamW groups of the trainable parameters: with weight decay, and without it for tensors of rank < 2
    (gains, biases, class embedding, logit scale; open_clip's rule) unless ``decay_all`` (Long-CLIP)."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if decay_all or parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


class TwoCaptionCLIP(nn.Module):
    """One forward over images, long captions and short captions (one text pass over both), for DDP.

    ``image_side`` (from ``Recipe.image_side``) replaces the plain image tower call: it is a submodule, so
    its parameters train, synchronise under DDP and sit in ``parameters()`` after the CLIP model's.
    ``hidden_positions``: how many leading positions of the long captions' hidden states the output
    carries (``None``: all, as a view; ``0``: none; ``n``: a copy of the first ``n``, so that the
    ``[2 x batch, 248, width]`` states of both branches are not kept alive through the backward).
    """

    def __init__(
        self, clip: CLIPModel, image_side: nn.Module | None = None, *, hidden_positions: int | None = None
    ) -> None:
        super().__init__()
        self.clip = clip
        self.image_side = image_side
        self.hidden_positions = hidden_positions

    def forward(
        self, pixel_values: torch.Tensor, long_ids: torch.Tensor, short_ids: torch.Tensor, **image_inputs: torch.Tensor
    ) -> TwoCaptionOutput:
        clip = self.clip
        short_image_features, hierarchy = None, ()
        if self.image_side is None:
            if image_inputs:
                raise ValueError(f"image inputs {sorted(image_inputs)} given, but there is no image side to take them")
            vision = clip.vision_model(pixel_values=pixel_values)
            image_features = clip.visual_projection(vision.pooler_output)
        else:
            side = self.image_side(clip, pixel_values, **image_inputs)
            image_features, short_image_features = side.image_features, side.short_image_features
            hierarchy = tuple(side.hierarchy_features)
        text = clip.text_model(input_ids=torch.cat([long_ids, short_ids]))
        long_features, short_features = clip.text_projection(text.pooler_output).split(long_ids.shape[0])
        hidden = text.last_hidden_state[: long_ids.shape[0]]
        if self.hidden_positions is not None:
            hidden = hidden[:, : self.hidden_positions].clone() if self.hidden_positions else None
        return TwoCaptionOutput(
            image_features,
            long_features,
            short_features,
            hidden,
            clip.logit_scale.exp(),
            short_image_features,
            hierarchy,
        )
