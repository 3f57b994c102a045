"""load_text_encoder: one entry point for folders, pipeline folders, checkpoint files and Hub ids."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from clip_builders import long_clip_state_dict, open_clip_text_outputs, tiny_openai_clip, token_batch
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from debias_diffusion import load_text_encoder
from debias_diffusion.conversion import convert_to_hf
from debias_diffusion.errors import EncoderMismatchError, ModelNotFoundError


@pytest.fixture(scope="module")
def long_clip_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("longclip")
    state, reference = long_clip_state_dict()
    torch.save(state, root / "longclip.pt")
    convert_to_hf(root / "longclip.pt", root / "hf", text_only=True, num_heads=2)
    return root, reference


def test_from_hf_folder_keeps_projection_and_sizes_tokenizer(long_clip_folder):
    root, reference = long_clip_folder
    loaded = load_text_encoder(root / "hf")
    assert isinstance(loaded.text_encoder, CLIPTextModelWithProjection)
    assert loaded.context_length == 248 == loaded.tokenizer.model_max_length
    assert loaded.width == 32
    ids = token_batch(248)
    with torch.no_grad():
        out = loaded.text_encoder(input_ids=ids).last_hidden_state
    torch.testing.assert_close(out, open_clip_text_outputs(reference, ids)["last"], atol=1e-5, rtol=0)


def test_from_checkpoint_file_as_sd1_text_model(long_clip_folder):
    root, reference = long_clip_folder
    loaded = load_text_encoder(root / "longclip.pt", with_projection=False, num_heads=2)
    assert type(loaded.text_encoder) is CLIPTextModel
    ids = token_batch(248)
    with torch.no_grad():
        out = loaded.text_encoder(input_ids=ids).last_hidden_state
    torch.testing.assert_close(out, open_clip_text_outputs(reference, ids)["last"], atol=1e-5, rtol=0)


def test_from_diffusers_pipeline_folder_reads_text_encoder_and_tokenizer(long_clip_folder, tmp_path):
    root, _ = long_clip_folder
    (tmp_path / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    shutil.copytree(root / "hf", tmp_path / "text_encoder")
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer_dir.mkdir()
    for name in ("tokenizer_config.json", "tokenizer.json"):
        shutil.move(tmp_path / "text_encoder" / name, tokenizer_dir / name)
    loaded = load_text_encoder(tmp_path, torch_dtype=torch.float16)
    assert loaded.context_length == 248 == loaded.tokenizer.model_max_length
    assert loaded.text_encoder.dtype == torch.float16


def test_stretch_on_load_and_expected_context_length(tmp_path):
    model = tiny_openai_clip(77)
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    with pytest.raises(EncoderMismatchError, match="77-row position table where 248 was expected; pass stretch_to=248"):
        load_text_encoder(tmp_path / "clip.pt", num_heads=2, expected_context_length=248)
    loaded = load_text_encoder(tmp_path / "clip.pt", num_heads=2, stretch_to=248, expected_context_length=248)
    assert loaded.context_length == 248 == loaded.tokenizer.model_max_length


def test_hub_id_offline_says_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set.*hf download no-such-owner/no-such-model"):
        load_text_encoder("no-such-owner/no-such-model")


def test_folder_tokenizer_keeps_open_clip_cleaning(long_clip_folder):
    import open_clip

    root, _ = long_clip_folder
    loaded = load_text_encoder(root / "hf")
    prompt = "a dog\u2019s toy &amp; a cat\u2019s bowl"  # curly apostrophes and an HTML entity
    ids = loaded.tokenizer(prompt, padding="max_length", max_length=248, truncation=True, return_tensors="pt").input_ids
    expected = open_clip.tokenize([prompt], context_length=248)
    assert torch.equal(ids[:, : int((expected != 0).sum())], expected[:, : int((expected != 0).sum())])


def _fake_hub_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay files out the way huggingface_hub caches a downloaded snapshot (no network involved)."""
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / ("0" * 40)
    for name, source in files.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, snapshot / name)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text("0" * 40)


def test_hub_ids_load_from_the_cache_when_offline(long_clip_folder, tmp_path, monkeypatch):
    import huggingface_hub.constants

    root, reference = long_clip_folder
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    hf_files = {p.name: p for p in (root / "hf").iterdir()}
    _fake_hub_cache(tmp_path, "someone/longclip-tiny-hf", hf_files)
    _fake_hub_cache(tmp_path, "someone/longclip-tiny", {"longclip.pt": root / "longclip.pt"})

    for source in ("someone/longclip-tiny-hf", "someone/longclip-tiny/longclip.pt"):
        loaded = load_text_encoder(source, num_heads=2)
        assert loaded.context_length == 248 == loaded.tokenizer.model_max_length
        ids = token_batch(248)
        with torch.no_grad():
            out = loaded.text_encoder(input_ids=ids).last_hidden_state
        torch.testing.assert_close(out, open_clip_text_outputs(reference, ids)["last"], atol=1e-5, rtol=0)


def test_clip_model_folder_with_its_own_projection_width(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=24,  # text_config.projection_dim keeps its default (512)
    )  # fmt: skip
    clip = CLIPModel(config).eval()
    clip.save_pretrained(tmp_path / "clip")
    loaded = load_text_encoder(tmp_path / "clip")
    assert isinstance(loaded.text_encoder, CLIPTextModelWithProjection)
    assert torch.equal(loaded.text_encoder.text_projection.weight, clip.text_projection.weight)
    ids = torch.tensor([[49406, 320, 1125, 49407]])
    with torch.no_grad():
        expected = clip.text_projection(clip.text_model(input_ids=ids).pooler_output)
        assert torch.allclose(loaded.text_encoder(input_ids=ids).text_embeds, expected, atol=1e-6)
    assert isinstance(load_text_encoder(tmp_path / "clip", with_projection=False).text_encoder, CLIPTextModel)
