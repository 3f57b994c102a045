"""Broken weights are refused where they are loaded: tensors missing from a folder, NaN in a pipeline."""

from __future__ import annotations

import pytest
import torch
from clip_builders import tiny_openai_clip
from diffusers import StableDiffusionPipeline
from pipeline_builders import sd_components, tiny_text_encoder
from safetensors.torch import load_file, save_file

from debias_diffusion import DeBiasStableDiffusionPipeline, load_text_encoder
from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.conversion import convert_to_hf
from debias_diffusion.errors import CheckpointError, EncoderMismatchError
from debias_diffusion.generation import load_pipeline
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.prominence.runner import SamplingSettings, evaluate_prominence
from debias_diffusion.weight_checks import check_complete, check_finite

pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _drop_tensor(folder, name: str) -> None:
    path = folder / "model.safetensors"
    weights = load_file(path)
    del weights[name]
    save_file(weights, path, metadata={"format": "pt"})


def _poison(module: torch.nn.Module, name: str) -> None:
    with torch.no_grad():
        dict(module.named_parameters())[name].view(-1)[0] = float("nan")


def test_text_encoder_folder_missing_a_tensor_is_refused(tmp_path):
    tiny_text_encoder(77, projection=True).save_pretrained(tmp_path / "encoder")
    assert load_text_encoder(tmp_path / "encoder").context_length == 77  # complete: loads
    _drop_tensor(tmp_path / "encoder", "text_model.encoder.layers.1.mlp.fc1.weight")
    for with_projection in (None, False):  # also as the SD 1.x CLIPTextModel (other key names)
        with pytest.raises(CheckpointError, match=r"lacks 1 weight tensors .*layers\.1\.mlp\.fc1\.weight.*random"):
            load_text_encoder(tmp_path / "encoder", with_projection=with_projection)


def test_projection_asked_of_a_folder_without_one_is_refused(tmp_path):
    tiny_text_encoder(77).save_pretrained(tmp_path / "plain")
    with pytest.raises(EncoderMismatchError, match="no text projection.*with_projection=False"):
        load_text_encoder(tmp_path / "plain", with_projection=True)


def test_clip_model_folder_missing_a_tensor_is_refused(tmp_path):
    torch.save(tiny_openai_clip().state_dict(), tmp_path / "clip.pt")
    convert_to_hf(tmp_path / "clip.pt", tmp_path / "clip", num_heads=2)
    assert load_clip_model(tmp_path / "clip").context_length == 77
    _drop_tensor(tmp_path / "clip", "visual_projection.weight")
    with pytest.raises(
        CheckpointError, match=r"clip lacks 1 weight tensors the model needs \(visual_projection\.weight\)"
    ):
        load_clip_model(tmp_path / "clip")


def test_nan_unet_is_refused_by_load_pipeline(tmp_path):
    components = sd_components(77)
    _poison(components["unet"], "conv_in.weight")
    StableDiffusionPipeline(**components).save_pretrained(tmp_path / "sd")
    with pytest.raises(CheckpointError, match=r"the pipeline's unet has NaN or infinite weights in 1 tensors"):
        load_pipeline(str(tmp_path / "sd"), "none")


def test_nan_text_encoder_stops_prominence_before_any_image(tmp_path):
    components = sd_components(248)
    _poison(components["text_encoder"], "final_layer_norm.weight")
    pipe = DeBiasStableDiffusionPipeline(**components)
    with pytest.raises(CheckpointError, match="the pipeline's text_encoder"):
        evaluate_prominence(
            {"tiny": pipe}, [["red cube", "blue cube"]], detector=ColourDetector(), output_dir=tmp_path / "run",
            seeds=(0,), progress=False, generation=SamplingSettings(steps=1, width=32, height=32),
        )  # fmt: skip
    assert not list((tmp_path / "run").rglob("*.png"))


def test_checks_name_what_is_wrong():
    module = torch.nn.Linear(2, 2)
    check_finite(module, "ok")
    module.register_buffer("scale", torch.tensor([float("inf")]))
    with pytest.raises(CheckpointError, match=r"the thing has NaN or infinite weights in 1 tensors \(scale\)"):
        check_finite(module, "the thing")
    check_complete(["text_model.embeddings.position_ids"], "folder")  # rebuilt by the model: allowed
    with pytest.raises(CheckpointError, match=r"lacks 7 .*\(k0, k1, k2, k3, k4 and 2 more\)"):
        check_complete([f"k{i}" for i in range(7)], "folder")
