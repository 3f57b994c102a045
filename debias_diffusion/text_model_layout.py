"""Find the parts of a transformers CLIP text model across transformers versions.

transformers >= 5.6 flattened ``CLIPTextModel`` (``embeddings``, ``encoder`` and
``final_layer_norm`` are direct children), while ``CLIPTextModelWithProjection`` and every
older release keep them under ``.text_model``. Code that touches internals goes through here.
"""

from __future__ import annotations

from torch import nn

from .renamed import renamed_attributes


def text_transformer(model: nn.Module) -> nn.Module:
    """Return the module that owns ``embeddings``, ``encoder`` and ``final_layer_norm``."""
    inner = getattr(model, "text_model", None)
    if isinstance(inner, nn.Module):
        return inner
    if hasattr(model, "embeddings") and hasattr(model, "encoder"):
        return model
    raise TypeError(
        f"{type(model).__name__} is not a CLIP text model: expected a transformers CLIPTextModel "
        "or CLIPTextModelWithProjection (with `.embeddings`/`.encoder`, or under `.text_model`)."
    )


def text_embeddings(model: nn.Module) -> nn.Module:
    """The ``CLIPTextEmbeddings`` module (token + position embeddings)."""
    return text_transformer(model).embeddings


def get_context_length(model: nn.Module) -> int:
    """The model's context length: the rows of its position-embedding table (earlier name: ``position_count``)."""
    return int(text_embeddings(model).position_embedding.weight.shape[0])


def hidden_width(model: nn.Module) -> int:
    """Width of the hidden states the model produces (what a UNet cross-attends to)."""
    return int(text_embeddings(model).token_embedding.weight.shape[1])


def state_dict_prefix(model: nn.Module) -> str:
    """Prefix of the text-transformer keys in ``model.state_dict()`` (``""`` or ``"text_model."``)."""
    return "text_model." if isinstance(getattr(model, "text_model", None), nn.Module) else ""


__getattr__ = renamed_attributes(__name__, {"position_count": "get_context_length"}, globals())
