"""Converters: the HF model must reproduce open_clip's forward of the source within 1e-5 (fp32)."""

from __future__ import annotations

import json

import pytest
import torch
from clip_builders import (
    long_clip_state_dict,
    open_clip_text_outputs,
    tiny_custom_text_clip,
    tiny_openai_clip,
    token_batch,
)
from safetensors.torch import save_file
from transformers import CLIPModel, CLIPTextModel, CLIPTextModelWithProjection

from debias_diffusion.conversion import convert_to_hf, from_open_clip_model, read_clip_source
from debias_diffusion.conversion.convert import PROVENANCE_FILE
from debias_diffusion.conversion.hf_models import build_text_encoder

TOL = 1e-5


@torch.no_grad()
def assert_text_equivalent(hf_encoder, reference, context_length: int) -> None:
    ids = token_batch(context_length)
    expected = open_clip_text_outputs(reference, ids)
    out = hf_encoder(input_ids=ids, output_hidden_states=True)
    torch.testing.assert_close(out.last_hidden_state, expected["last"], atol=TOL, rtol=0)
    torch.testing.assert_close(out.hidden_states[-2], expected["penultimate"], atol=TOL, rtol=0)
    if isinstance(hf_encoder, CLIPTextModelWithProjection):
        torch.testing.assert_close(out.text_embeds, expected["pooled"], atol=TOL, rtol=0)


def test_openai_layout_pt_full_clip_round_trip(tmp_path):
    model = tiny_openai_clip(77)
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    result = convert_to_hf(tmp_path / "clip.pt", tmp_path / "hf", num_heads=2, vision_num_heads=2)
    assert result.equivalence.worst <= TOL

    hf = CLIPModel.from_pretrained(tmp_path / "hf").eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = hf.visual_projection(hf.vision_model(pixel_values=images).pooler_output)
        torch.testing.assert_close(ours, model.encode_image(images), atol=TOL, rtol=0)
        torch.testing.assert_close(hf.logit_scale, model.logit_scale, atol=0, rtol=0)
    assert_text_equivalent(CLIPTextModelWithProjection.from_pretrained(tmp_path / "hf").eval(), model, 77)
    assert_text_equivalent(CLIPTextModel.from_pretrained(tmp_path / "hf").eval(), model, 77)
    provenance = json.loads((tmp_path / "hf" / PROVENANCE_FILE).read_text())
    assert provenance["text"]["positions"] == 77 and provenance["vision"]["image_size"] == 32


def test_long_clip_checkpoint_merges_residual_positions(tmp_path):
    state, reference = long_clip_state_dict()
    torch.save(state, tmp_path / "longclip-tiny.pt")
    convert_to_hf(tmp_path / "longclip-tiny.pt", tmp_path / "hf", text_only=True, num_heads=2)
    encoder = CLIPTextModelWithProjection.from_pretrained(tmp_path / "hf").eval()
    assert encoder.config.max_position_embeddings == 248
    assert_text_equivalent(encoder, reference, 248)

    # The community converter's bug (copying only `positional_embedding`) must be visibly wrong.
    dropped = {k: v for k, v in state.items() if k != "positional_embedding_res"}
    wrong = build_text_encoder(read_clip_source_from(dropped, tmp_path))
    ids = token_batch(248)
    with torch.no_grad():
        gap = (wrong(input_ids=ids).last_hidden_state - open_clip_text_outputs(reference, ids)["last"]).abs().max()
    assert gap > 1e-2


def read_clip_source_from(state: dict, tmp_path):
    torch.save(state, tmp_path / "variant.pt")
    return read_clip_source(tmp_path / "variant.pt", num_heads=2, text_only=True)


def test_open_clip_training_checkpoint_with_module_and_text_prefixes(tmp_path):
    model = tiny_custom_text_clip(248)
    checkpoint = {
        "epoch": 3,
        "name": "debias-tiny",
        "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-6, "params": [0, 1]}]},
    }
    torch.save(checkpoint, tmp_path / "epoch_3.pt")
    convert_to_hf(tmp_path / "epoch_3.pt", tmp_path / "hf", text_only=True, num_heads=2)
    assert_text_equivalent(CLIPTextModelWithProjection.from_pretrained(tmp_path / "hf").eval(), model, 248)


def test_open_clip_training_checkpoint_with_residual_table(tmp_path):
    model = tiny_custom_text_clip(248, seed=4)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    residual = torch.randn(248, 32, generator=torch.Generator().manual_seed(9))
    state["module.text.positional_embedding_res"] = residual
    with torch.no_grad():
        model.text.positional_embedding[20:] = residual[20:]
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "debias.pt")
    clip = read_clip_source(tmp_path / "debias.pt", num_heads=2, text_only=True)
    assert_text_equivalent(build_text_encoder(clip), model, 248)


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_open_clip_model_object_reads_heads_and_activation(quick_gelu):
    model = tiny_openai_clip(77, quick_gelu=quick_gelu, heads=4, seed=5)
    clip = from_open_clip_model(model)
    assert clip.text.heads == 4 and clip.vision.heads == 2
    assert clip.text.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    assert_text_equivalent(build_text_encoder(clip), model, 77)


def test_wrong_head_count_is_caught_by_verification(tmp_path):
    model = tiny_openai_clip(77, heads=4, seed=6)
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    # The file cannot say it has 4 heads; the user says 2: the open_clip reference built with 2
    # heads agrees with the converted model, so equivalence passes, but against the true model
    # the outputs differ. Heads are structural and must be given for non-OpenAI widths.
    clip = read_clip_source(tmp_path / "clip.pt", num_heads=2, text_only=True)
    ids = token_batch(77)
    with torch.no_grad():
        gap = (
            (build_text_encoder(clip)(input_ids=ids).last_hidden_state - open_clip_text_outputs(model, ids)["last"])
            .abs()
            .max()
        )
    assert gap > 1e-3


def test_safetensors_state_dict_and_stretch_on_the_way(tmp_path):
    model = tiny_openai_clip(77, seed=7)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "clip.safetensors")
    result = convert_to_hf(tmp_path / "clip.safetensors", tmp_path / "hf", stretch_to=248, text_only=True, num_heads=2)
    assert result.stretched_from == 77 and result.text.context_length == 248
    encoder = CLIPTextModelWithProjection.from_pretrained(tmp_path / "hf").eval()
    table = encoder.text_model.embeddings.position_embedding.weight
    assert table.shape == (248, 32)
    torch.testing.assert_close(table[:20], model.positional_embedding[:20], atol=0, rtol=0)
    torch.testing.assert_close(table[244], model.positional_embedding[76], atol=1e-7, rtol=0)
    # A prompt that ends before position 20 sees only copied positions: identical outputs.
    ids = token_batch(248, ends=(10, 19))
    with torch.no_grad():
        long_out = encoder(input_ids=ids).text_embeds
        short_out = model.encode_text(ids[:, :77])
    torch.testing.assert_close(long_out, short_out, atol=TOL, rtol=0)


def test_saved_tokenizer_follows_the_encoder_length(tmp_path):
    from transformers import CLIPTokenizer

    state, _ = long_clip_state_dict()
    torch.save(state, tmp_path / "l.pt")
    convert_to_hf(tmp_path / "l.pt", tmp_path / "hf", text_only=True, num_heads=2, dtype=torch.float16)
    tokenizer = CLIPTokenizer.from_pretrained(tmp_path / "hf")
    assert tokenizer.model_max_length == 248
    assert CLIPTextModelWithProjection.from_pretrained(tmp_path / "hf").dtype == torch.float16


def test_verification_refuses_a_broken_mapping(tmp_path, monkeypatch):
    from debias_diffusion.conversion import openai_layout
    from debias_diffusion.errors import CheckpointError

    torch.save(tiny_openai_clip(77).state_dict(), tmp_path / "clip.pt")
    real = openai_layout._block_to_hf

    def swapped_norms(sd, src, dst):
        out = real(sd, src, dst)
        out[dst + "layer_norm1.weight"], out[dst + "layer_norm2.weight"] = (
            out[dst + "layer_norm2.weight"],
            out[dst + "layer_norm1.weight"],
        )
        return out

    monkeypatch.setattr(openai_layout, "_block_to_hf", swapped_norms)
    with pytest.raises(CheckpointError, match="differs from open_clip's forward .* nothing was written"):
        convert_to_hf(tmp_path / "clip.pt", tmp_path / "hf", text_only=True, num_heads=2)
    assert not (tmp_path / "hf").exists()


def test_text_tower_only_checkpoint_needs_no_flag(tmp_path):
    state, reference = long_clip_state_dict(seed=8)
    text_only = {k: v for k, v in state.items() if not k.startswith("visual.") and k != "logit_scale"}
    torch.save(text_only, tmp_path / "text.pt")
    result = convert_to_hf(tmp_path / "text.pt", tmp_path / "hf", num_heads=2)
    assert result.vision is None
    assert_text_equivalent(CLIPTextModelWithProjection.from_pretrained(tmp_path / "hf").eval(), reference, 248)
