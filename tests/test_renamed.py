"""Old names kept for one release: each still works, warns once per use, and points at the new name."""

from __future__ import annotations

import importlib
import inspect
import warnings

import pytest
import torch
from clip_builders import tiny_openai_clip
from transformers import CLIPTextConfig, CLIPTextModel

from debias_diffusion.conversion import read_clip_source
from debias_diffusion.loading import load_text_encoder
from debias_diffusion.renamed import renamed_keywords, renamed_property
from debias_diffusion.stretching import set_context_length, stretch_ratio, stretch_to_context_length, stretched_length
from debias_diffusion.text_model_layout import get_context_length
from debias_diffusion.tokenization import build_clip_tokenizer

RENAMED_MODULE_ATTRIBUTES = [
    ("debias_diffusion.clip_constants", "OPENAI_CLIP_POSITIONS", "OPENAI_CLIP_CONTEXT_LENGTH"),
    ("debias_diffusion.clip_constants", "LONG_CLIP_POSITIONS", "LONG_CLIP_CONTEXT_LENGTH"),
    ("debias_diffusion.stretching", "LONG_CLIP_POSITIONS", "LONG_CLIP_CONTEXT_LENGTH"),
    ("debias_diffusion.stretching", "stretch_to_positions", "stretch_to_context_length"),
    ("debias_diffusion.stretching", "set_position_count", "set_context_length"),
    ("debias_diffusion.text_model_layout", "position_count", "get_context_length"),
    ("debias_diffusion.pipeline_components", "check_equal_positions", "check_equal_context_lengths"),
    ("train_encoder.token_states", "SD_POSITIONS", "SD_CONTEXT_LENGTH"),
]


def _text_encoder(context_length: int = 77) -> CLIPTextModel:
    torch.manual_seed(0)
    config = CLIPTextConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=context_length, eos_token_id=49407,
    )  # fmt: skip
    return CLIPTextModel(config)


@pytest.mark.parametrize(("module", "old", "new"), RENAMED_MODULE_ATTRIBUTES, ids=lambda x: x)
def test_old_module_attribute_warns_and_is_the_new_object(module, old, new):
    imported = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated.*use {new}") as caught:
        value = getattr(imported, old)
    assert value is getattr(imported, new)
    assert caught[0].filename == __file__  # the warning points at the caller's line


def test_unknown_module_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'NO_SUCH_NAME'"):
        importlib.import_module("debias_diffusion.clip_constants").NO_SUCH_NAME  # noqa: B018


def test_build_clip_tokenizer_model_max_length_keyword():
    with pytest.warns(DeprecationWarning, match=r"build_clip_tokenizer\(model_max_length=...\) is deprecated.*"
                      r"use context_length=") as caught:  # fmt: skip
        old = build_clip_tokenizer(model_max_length=77)
    assert caught[0].filename == __file__
    assert old.model_max_length == 77 == build_clip_tokenizer(context_length=77).model_max_length
    with pytest.raises(TypeError, match="got both context_length= and its deprecated spelling model_max_length="):
        build_clip_tokenizer(context_length=77, model_max_length=77)


def test_stretched_length_num_positions_keyword():
    with pytest.warns(DeprecationWarning, match=r"stretched_length\(num_positions=...\)"):
        assert stretched_length(num_positions=77) == 248 == stretched_length(context_length=77)


def test_stretch_ratio_and_set_context_length_num_positions_keyword():
    with pytest.warns(DeprecationWarning, match=r"stretch_ratio\(num_positions=...\)"):
        assert stretch_ratio(num_positions=77, target=248) == 4
    model = _text_encoder(77)
    with pytest.warns(DeprecationWarning, match=r"set_context_length\(num_positions=...\)"):
        set_context_length(model, num_positions=77)
    assert model.config.max_position_embeddings == 77


def test_canonical_stretched_to_positions_keyword():
    clip = read_clip_source(tiny_openai_clip(77), num_heads=2, text_only=True)
    with pytest.warns(DeprecationWarning, match=r"CanonicalCLIP.stretched_to\(positions=...\)"):
        assert clip.stretched_to(positions=248).text.context_length == 248


def test_stretch_to_context_length_positions_keyword():
    model = _text_encoder(77)
    with pytest.warns(DeprecationWarning, match=r"stretch_to_context_length\(positions=...\)"):
        assert stretch_to_context_length(model, positions=248) is True
    assert get_context_length(model) == 248


def test_load_text_encoder_expected_positions_keyword_and_max_length_attribute():
    clip = tiny_openai_clip(77)
    with pytest.warns(
        DeprecationWarning, match=r"load_text_encoder\(expected_positions=...\).*expected_context_length="
    ):
        loaded = load_text_encoder(clip, expected_positions=77, num_heads=2)
    with (
        pytest.raises(ValueError, match="77-row position table where 248 was expected"),
        pytest.warns(DeprecationWarning),
    ):
        load_text_encoder(clip, expected_positions=248, num_heads=2)  # still checked
    with pytest.warns(DeprecationWarning, match=r"LoadedTextEncoder\.max_length is deprecated.*use context_length"):
        assert loaded.max_length == 77 == loaded.context_length


def test_text_tower_spec_positions_attribute():
    spec = read_clip_source(tiny_openai_clip(77), num_heads=2, text_only=True).text
    with pytest.warns(DeprecationWarning, match=r"TextTowerSpec\.positions is deprecated.*use context_length"):
        assert spec.positions == 77 == spec.context_length


def test_renamed_keywords_is_generic_and_keeps_the_new_signature():
    @renamed_keywords(old_a="a", old_b="b")
    def add(a: int, *, b: int = 0) -> int:
        return a + b

    with pytest.warns(DeprecationWarning) as caught:
        assert add(old_a=1, old_b=2) == 3
    assert len(caught) == 2 and all(w.filename == __file__ for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert add(1, b=2) == 3  # new spellings: no warning
    assert list(inspect.signature(add).parameters) == ["a", "b"]


def test_renamed_property_reads_the_new_attribute():
    class Box:
        size = 3
        length = renamed_property("length", "size")

    with pytest.warns(DeprecationWarning, match=r"Box\.length is deprecated.*use size"):
        assert Box().length == 3
