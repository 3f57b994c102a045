"""Model cards written at export, pushing an export to the Hub, and the ComfyUI / A1111 activation warning."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import yaml
from clip_builders import TEXT_LAYERS, TEXT_WIDTH, tiny_openai_clip

from debias_diffusion import ui_compatibility
from debias_diffusion.conversion import convert_to_hf
from debias_diffusion.ui_compatibility import UICompatibilityWarning, ui_activation_mismatch
from train_encoder.model_card import model_card, run_facts


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


# --- the card ------------------------------------------------------------------------------------------


def test_card_from_a_run_folder_holds_its_recorded_facts(tmp_path):
    run = tmp_path / "run"
    (run / "eval-urban").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"lr": 1e-6, "batch_size": 256, "train_data": "sharegpt4v.json"}))
    (run / "drift.json").write_text(json.dumps({"reference": "openai/clip-vit-large-patch14",
                                                "mean_cosine_first_77": 0.9731, "captions": 256, "per_position": [1.0]}))  # fmt: skip
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 2.5}\n{"step": 20, "loss": 1.25}\n{"step": 3')  # torn line
    (run / "eval-urban" / "results.md").write_text(
        "| dataset | probe | a T2I R@1 |\n| --- | --- | ---: |\n| urban1k | full | 91.0 |\n"
    )
    metadata = {"recipe": "debias", "source": "openai/clip-vit-large-patch14", "step": 20, "epoch": 3, "positions": 248,
                "hardware": {"processes": 8, "device": "cuda", "device_name": "NVIDIA H100", "mixed_precision": "bf16"}}  # fmt: skip
    card = model_card(metadata, run_facts(run), license="mit")
    front = _front_matter(card)
    assert front["base_model"] == "openai/clip-vit-large-patch14" and front["license"] == "mit"
    assert front["library_name"] == "transformers" and "debias-clip" in front["tags"]
    assert "| steps | 20 |" in card and "| lr | 1e-06 |" in card and "| train data | sharegpt4v.json |" in card
    assert "| hardware | 8 x NVIDIA H100, mixed precision bf16 |" in card
    assert "loss 1.25" in card  # the last whole metrics line, the torn one skipped
    assert "**0.9731**" in card and "256 training captions" in card and "per_position" not in card
    assert "`eval-urban/results.md`" in card and "| urban1k | full | 91.0 |" in card


def test_card_says_not_recorded_and_keeps_local_sources_out_of_the_hub_metadata(tmp_path):
    source = tmp_path / "my" / "clip"
    source.mkdir(parents=True)
    card = model_card({"recipe": "long-clip", "source": str(source)}, run_facts(tmp_path / "absent"))
    front = _front_matter(card)
    assert "base_model" not in front and front["license"] == "other" and "long-clip" in front["tags"]
    assert "| steps | not recorded |" in card and "| hardware | not recorded |" in card
    assert "Not recorded for this run" in card and "No evaluation results were found" in card


# --- the ComfyUI / A1111 activation warning ---------------------------------------------------------


def test_only_clip_l_shaped_encoders_with_another_activation_are_flagged():
    assert ui_activation_mismatch(768, 12, "quick_gelu") is None
    assert ui_activation_mismatch(1280, 32, "gelu") is None  # bigG: the UIs use gelu there
    assert ui_activation_mismatch(512, 12, "gelu") is None  # B/16 text tower: no SD pipeline uses it
    message = ui_activation_mismatch(768, 12, "gelu")
    assert "ComfyUI and A1111 will compute it with 'quick_gelu'" in message


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_convert_warns_when_the_ui_activation_differs(tmp_path, monkeypatch, quick_gelu):
    # a tiny tower stands in for CLIP-L's shape, so the real check runs on a real conversion
    monkeypatch.setattr(ui_compatibility, "CLIP_L_WIDTH", TEXT_WIDTH)
    monkeypatch.setattr(ui_compatibility, "CLIP_L_LAYERS", TEXT_LAYERS)
    model = tiny_openai_clip(77, quick_gelu=quick_gelu, seed=3)
    torch.save(model.state_dict(), tmp_path / "clip.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert_to_hf(tmp_path / "clip.pt", tmp_path / "out", text_only=True, num_heads=2,
                      hidden_act="quick_gelu" if quick_gelu else "gelu")  # fmt: skip
    flagged = [w for w in caught if issubclass(w.category, UICompatibilityWarning)]
    assert len(flagged) == (0 if quick_gelu else 1)
    assert (tmp_path / "out" / "model.safetensors").is_file()  # a warning, not a refusal
