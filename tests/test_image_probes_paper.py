"""``probe-image --protocol paper``: clip-oscope's RGB-first loading and matching pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from debias_diffusion.cli import main
from debias_diffusion.clip_embedding import encode_images, encode_text_features
from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.errors import ProbeConfigError
from debias_diffusion.image_preprocessing import load_image
from debias_diffusion.image_probes import (
    build_matching_captions,
    paper_matching_captions,
    probe_image,
    read_image_folder,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

VOCABULARY = ("cat", "cup", "dog", "fox", "hen", "owl")


def _clip_oscope_pairs(image_objects: list[str], one_objects: list[str], first_scenario: bool) -> list[tuple[str, str]]:
    """clip-oscope's ``prepare_dataset`` for one image, re-stated (large object at file index 0)."""

    def swap(items, i, j):
        items[i], items[j] = items[j], items[i]
        return items

    def join(items):
        return " and ".join(items[:-1]) + " and " + items[-1]

    last = len(image_objects) - 1
    right = join(swap(image_objects.copy(), 0, 0 if first_scenario else last))
    changed = swap(image_objects.copy(), 0, 0)
    pairs = []
    for candidate in one_objects:
        if candidate in image_objects:
            continue
        changed = [candidate, *changed[1:]] if first_scenario else [*changed[:-1], candidate]
        pairs.append((right, join(changed)))
    return pairs


@pytest.mark.parametrize("names", [["owl", "cat", "dog", "hen"], ["dog", "cat"]])
def test_paper_pairs_are_clip_oscopes(names):
    captions = paper_matching_captions(names, VOCABULARY, image=3)
    assert [c.absent for c in captions] == [v for v in VOCABULARY if v not in names]
    assert all(c.image == 3 for c in captions)
    assert [(c.right_1, c.wrong_1) for c in captions] == _clip_oscope_pairs(names, list(VOCABULARY), True)
    assert [(c.right_2, c.wrong_2) for c in captions] == _clip_oscope_pairs(names, list(VOCABULARY), False)


def test_paper_pairs_hand_written():
    first = paper_matching_captions(["owl", "cat", "dog", "hen"], VOCABULARY)[0]
    assert (first.absent, first.right_1, first.wrong_1) == ("cup", "owl and cat and dog and hen",
                                                           "cup and cat and dog and hen")  # fmt: skip
    # scenario 2 as the code builds it: large swapped with the last object; the wrong caption keeps the large first
    assert (first.right_2, first.wrong_2) == ("hen and cat and dog and owl", "owl and cat and dog and cup")


def _noise(path, mode, seed):
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (40, 52, 4), dtype=np.uint8)
    rgba[..., 3] = np.linspace(0, 255, 52, dtype=np.uint8)[None, :]
    image = Image.fromarray(rgba, "RGBA")
    (image if mode == "RGBA" else image.convert("RGB").quantize(32)).save(path)


@pytest.fixture(scope="module")
def paper_data(tmp_path_factory):
    """Palette and RGBA images (where converting first matters), and a tiny CLIPModel."""
    root = tmp_path_factory.mktemp("image-paper")
    (root / "images").mkdir()
    (root / "references").mkdir()
    for seed, name in enumerate(VOCABULARY):
        _noise(root / "references" / f"{name}.png", "RGBA", seed)
    sets = ["owl_cat_dog", "cat_hen_fox", "dog_cup_owl", "hen_owl_cat", "fox_dog_cup", "cup_cat_hen"]
    for seed, stem in enumerate(sets):
        _noise(root / "images" / f"{stem}.png", "P" if seed % 2 else "RGBA", 10 + seed)
    torch.manual_seed(0)
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(text_config=dict(tower, max_position_embeddings=77),
                        vision_config=dict(tower, image_size=32, patch_size=8), projection_dim=16)  # fmt: skip
    CLIPModel(config).eval().save_pretrained(root / "model")
    return root


def test_probe_image_paper_protocol_matches_a_restatement(paper_data):
    data = read_image_folder(paper_data / "images", paper_data / "references")
    clip = load_clip_model(paper_data / "model")
    results = probe_image({"tiny": clip}, data, protocol="paper", test_fraction=0.34, progress=False, device="cpu")
    model = results.models[0]
    rgb_first = encode_images(clip, [load_image(i.image).convert("RGB") for i in data.images], progress=False)
    as_open_clip = encode_images(clip, [i.image for i in data.images], progress=False)
    assert not torch.allclose(rgb_first, as_open_clip)  # the order of conversion matters for these files
    for scenario, attribute in ((True, "scenario_1"), (False, "scenario_2")):
        correct = pairs = 0
        for index, image in enumerate(data.images):
            restated = _clip_oscope_pairs(data.names(image), list(data.vocabulary.objects), scenario)
            right, wrong = (
                encode_text_features(clip, list(texts), progress=False) for texts in zip(*restated, strict=True)
            )
            image_embedding = rgb_first[index].double()
            correct += int(((right.double() @ image_embedding) > (wrong.double() @ image_embedding)).sum())
            pairs += len(restated)
        result = getattr(model.matching, attribute)
        assert (result.correct, result.pairs) == (correct, pairs) == (result.correct, 6 * 3)
    ours = probe_image({"tiny": clip}, data, test_fraction=0.34, progress=False, device="cpu")
    assert ours.models[0].matching.scenario_1.pairs == 6 and len(build_matching_captions(data)) == 6
    with pytest.raises(ProbeConfigError, match="no articles"):
        probe_image({"tiny": clip}, data, protocol="paper", articles=True, progress=False)
    with pytest.raises(ProbeConfigError, match="unknown protocol 'table6'"):
        probe_image({"tiny": clip}, data, protocol="table6", progress=False)


def test_cli_probe_image_paper_protocol(paper_data, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["probe-image", "--protocol", "paper", "--model", f"tiny={paper_data / 'model'}", "--images",
            str(paper_data / "images"), "--references", str(paper_data / "references"), "--test-fraction", "0.34",
            "--device", "cpu", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "18 and" in capsys.readouterr().out  # "x/18 and y/18 pairs right"
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["protocol"] == "paper"
    records = [json.loads(line) for line in (out / "images.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(len(r["pairs"]) == 3 for r in records)
    assert "clip-oscope's pairs" in (out / "table.md").read_text()
    assert main([*args[:-2], "--output-dir", str(tmp_path / "bad"), "--articles"]) == 2
    assert "no articles" in capsys.readouterr().err
