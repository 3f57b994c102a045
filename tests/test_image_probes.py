"""Image probes (IOR, IOC, order-sensitive matching): metrics on hand-computed cases, data sources, CLI end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clip_builders import tiny_openai_clip
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from debias_diffusion.cli import main
from debias_diffusion.clip_embedding import encode_images, encode_text_features
from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.errors import ProbeConfigError
from debias_diffusion.image_probes import (
    absent_objects,
    ioc_probe,
    ior_diagnostics,
    ior_metric,
    ior_probe,
    matching_accuracy,
    matching_captions,
    parse_image_name,
    probe_image,
    read_image_folder,
    shapes_world_data,
    slot_labels,
)
from debias_diffusion.image_probes.shapes import reference_scene, slot_order
from debias_diffusion.prominence.detectors.colour import DEFAULT_PALETTE
from debias_diffusion.shapes_world import SceneConfig, sample_scene

# --- IOR ------------------------------------------------------------------------------------------


def test_ior_conditioning_and_per_slot_shares_hand_computed():
    # 5 images of 3 objects (slot order: large, small 1, small 2) over a vocabulary of 5 objects
    objects = [[2, 0, 4], [1, 3, 0], [0, 1, 2], [4, 2, 3], [0, 1, 2]]
    similarity = np.array(
        [
            [0.8, 0.1, 0.9, 0.1, 0.7],  # top-3 {2, 0, 4} = its objects; top-1 is 2 = the large one
            [0.6, 0.85, 0.2, 0.9, 0.2],  # top-3 {3, 1, 0}; top-1 is 3 = small 1
            [0.9, 0.7, 0.1, 0.8, 0.1],  # top-3 {0, 3, 1}: 3 is not in the image -> not kept
            [0.1, 0.1, 0.5, 0.95, 0.9],  # top-3 {3, 4, 2}; top-1 is 3 = small 2
            [0.9, 0.8, 0.7, 0.1, 0.1],  # top-3 {0, 1, 2}; top-1 is 0 = the large one
        ]
    )
    result = ior_metric(similarity, objects)
    assert (result.qualified, result.total) == (4, 5)
    assert result.counts == (2, 1, 1)
    assert result.shares == pytest.approx((0.5, 0.25, 0.25))
    assert slot_labels(3) == ["Large", "Small 1", "Small 2"]

    every = ior_diagnostics(similarity, objects)  # over all 5 images, unconditioned
    assert every.top1_shares == pytest.approx((3 / 5, 1 / 5, 1 / 5)) and every.outside == 0
    # ranks per image and slot: (1,2,3) (2,1,3) (1,3,4) (2,3,1) (1,2,3); image 2's objects 2 and 4 tie, 2 first
    assert every.mean_ranks == pytest.approx((7 / 5, 11 / 5, 14 / 5))
    assert every.best_slot_shares == pytest.approx((3 / 5, 1 / 5, 1 / 5))  # clip-oscope's second IOR list

    nothing = ior_metric(np.eye(4)[[3, 3]], [[0, 1], [1, 2]])  # top-2 never equals the objects
    assert nothing.shares is None and nothing.qualified == 0 and nothing.counts == (0, 0)
    outside = ior_diagnostics(np.eye(4)[[3, 3]], [[0, 1], [1, 2]])
    assert (
        outside.outside == 1 and outside.top1_shares == (0, 0) and outside.mean_ranks == (2.5, 3.5)
    )  # ranks (2, 3) and (3, 4)
    assert outside.best_slot_shares == (1, 0)  # every image counts once, even with its top-1 outside
    mixed = ior_diagnostics(np.array([[0.1, 0.5, 0.9, 0.7], [0.9, 0.2, 0.3, 0.8]]), [[0, 1], [3, 1]])
    assert mixed.top1_shares == (0, 0) and mixed.best_slot_shares == (
        0.5,
        0.5,
    )  # 1 beats 0 (slot 2); 3 beats 1 (slot 1)


def test_ior_probe_uses_cosine_similarity_of_images_and_references():
    references = torch.eye(4)
    images = torch.nn.functional.normalize(torch.tensor([[3.0, 2.0, 0.0, 0.0], [0.0, 1.0, 0.0, 2.0]]), dim=1)
    result = ior_probe(images, references, torch.tensor([[1, 0], [1, 3]]))
    assert result.counts == (0, 2) and result.qualified == 2  # object 0 beats the large object 1; 3 beats 1
    with pytest.raises(ValueError, match="16 wide but references 4"):
        ior_probe(torch.zeros(2, 16), references, torch.tensor([[0, 1], [1, 2]]))


# --- matching ----------------------------------------------------------------------------------


def test_matching_captions_put_the_large_or_absent_object_first_or_last():
    captions = matching_captions(["pizza", "apple", "desk"], "car")
    assert captions.absent == "car"
    assert (captions.right_1, captions.wrong_1) == ("pizza and apple and desk", "car and apple and desk")
    assert (captions.right_2, captions.wrong_2) == ("apple and desk and pizza", "apple and desk and car")
    with_articles = matching_captions(["apple", "desk"], "owl", articles=True)
    assert (with_articles.right_2, with_articles.wrong_2) == ("a desk and an apple", "a desk and an owl")


def test_absent_objects_are_seeded_and_never_in_the_image():
    images = [(0, 1, 2), (3, 4, 5), (0, 5, 2)] * 20
    drawn = absent_objects(images, 7, seed=3)
    assert drawn == absent_objects(images, 7, seed=3) and drawn != absent_objects(images, 7, seed=4)
    assert all(missing not in image and 0 <= missing < 7 for image, missing in zip(images, drawn, strict=True))
    assert {missing for image, missing in zip(images, drawn, strict=True) if image == (0, 1, 2)} == {3, 4, 5, 6}
    with pytest.raises(ValueError, match="no absent object"):
        absent_objects([(0, 1)], 2, seed=0)


def test_matching_accuracy_hand_computed():
    result = matching_accuracy(torch.tensor([0.5, 0.3, 0.2, 0.4]), torch.tensor([0.4, 0.3, 0.5, 0.1]))
    assert (result.correct, result.pairs, result.accuracy) == (2, 4, 0.5)  # the tie counts as wrong
    assert matching_accuracy([], []).accuracy is None
    with pytest.raises(ValueError, match="one length"):
        matching_accuracy([0.1, 0.2], [0.1])
    with pytest.raises(ValueError, match="NaN"):
        matching_accuracy([float("nan")], [0.1])


# --- IOC ---------------------------------------------------------------------------------------------


def test_ioc_reads_the_encoded_slot_and_not_the_missing_one():
    generator = torch.Generator().manual_seed(0)
    count, classes = 400, 6
    large = torch.randint(0, classes, (count,), generator=generator)
    small = torch.randint(0, classes, (count,), generator=generator)  # not in the embedding at all
    embeddings = (
        torch.nn.functional.one_hot(large, classes).float() * 3
        + torch.randn(count, 10, generator=generator)[:, :classes]
    )
    embeddings = torch.cat([embeddings, torch.randn(count, 4, generator=generator)], dim=1)
    result = ioc_probe(embeddings, torch.stack([large, small], dim=1), classes, seed=1)
    assert result.accuracies[0] > 0.9 and result.accuracies[1] < 0.35
    assert (result.train_size, result.test_size, result.chance) == (320, 80, pytest.approx(1 / 6))
    again = ioc_probe(embeddings, torch.stack([large, small], dim=1), classes, seed=1)
    assert again == result


# --- data sources ------------------------------------------------------------------------------------


def _png(path, colour=(200, 30, 30), size=(24, 24)):
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def comco_folder(tmp_path):
    references = tmp_path / "references"
    images = tmp_path / "images"
    references.mkdir()
    images.mkdir()
    for number, name in enumerate(["cat", "dog", "hen", "red cup", "owl"]):
        _png(references / f"{name}.png", (40 * number, 200, 100))
    for name in ["cat_dog_hen.png", "dog_red cup_cat__2.jpg", "hen_cat.PNG", "owl_hen_dog.png", "cat_dog_owl__b.png"]:
        _png(images / name)
    (images / "notes.txt").write_text("not an image")
    (images / ".hidden.png").write_bytes(b"")
    return images, references


def test_folder_reader_names_slots_and_filters_counts(comco_folder):
    images, references = comco_folder
    assert parse_image_name("pizza_apple_desk__0007.png") == ("pizza", "apple", "desk")
    with pytest.raises(ProbeConfigError, match="different numbers of objects.*1 image\\(s\\) of 2"):
        read_image_folder(images, references)
    data = read_image_folder(images, references, objects=3)
    assert data.vocabulary.objects == ("cat", "dog", "hen", "owl", "red cup")
    assert [p.name for p in data.references] == ["cat.png", "dog.png", "hen.png", "owl.png", "red cup.png"]
    by_name = {image.name: data.names(image) for image in data.images}
    assert by_name == {
        "cat_dog_hen.png": ["cat", "dog", "hen"],
        "cat_dog_owl__b.png": ["cat", "dog", "owl"],
        "dog_red cup_cat__2.jpg": ["dog", "red cup", "cat"],
        "owl_hen_dog.png": ["owl", "hen", "dog"],
    }
    assert data.num_objects == 3 and "file-name order" in data.slot_order
    assert read_image_folder(images, references, objects=2).images[0].objects == (2, 0)


@pytest.mark.parametrize(
    ("image_name", "message"),
    [
        ("cat_cow_dog.png", r"cat_cow_dog.png names 'cow' but .* has no 'cow.png'"),
        ("cat_cat_dog.png", "names an object twice"),
        ("cat.png", "at least 2 objects"),
        ("cat__dog.png", "at least 2 objects"),
    ],
)
def test_folder_reader_bad_image_names(comco_folder, image_name, message):
    images, references = comco_folder
    _png(images / image_name)
    with pytest.raises(ProbeConfigError, match=message):
        read_image_folder(images, references, objects=3 if image_name.count("_") == 2 else None)


def test_folder_reader_bad_folders(comco_folder, tmp_path):
    images, references = comco_folder
    with pytest.raises(ProbeConfigError, match="references folder .* not found"):
        read_image_folder(images, tmp_path / "nowhere")
    with pytest.raises(ProbeConfigError, match="no image holds 5 objects"):
        read_image_folder(images, references, objects=5)
    _png(references / "big_cat.png")
    with pytest.raises(ProbeConfigError, match="may not contain '_'"):
        read_image_folder(images, references, objects=3)
    (references / "big_cat.png").unlink()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProbeConfigError, match="holds no .png"):
        read_image_folder(tmp_path / "empty", references)


def test_shapes_world_source_is_seeded_with_large_first_then_smaller(tmp_path):
    data = shapes_world_data(6, 4, seed=3, resolution=32)
    config = SceneConfig(min_objects=4, max_objects=4)
    assert len(data.vocabulary) == 64 == len(data.references) and data.num_objects == 4
    assert all(ref.size == (32, 32) for ref in data.references)
    for number, image in enumerate(data.images):
        scene = sample_scene(3, number, config)
        order = slot_order(scene)
        assert scene.objects[order[0]].size_class == "large"
        sizes = [scene.objects[i].size for i in order]
        assert sizes == sorted(sizes, reverse=True)
        assert data.names(image) == [scene.objects[i].phrase for i in order]
        assert image.image.size == (32, 32)
    again = shapes_world_data(6, 4, seed=3, resolution=32)
    assert [i.objects for i in again.images] == [i.objects for i in data.images]
    assert [i.objects for i in shapes_world_data(6, 4, seed=4, resolution=32).images] != [
        i.objects for i in data.images
    ]
    # a reference is its object alone, centred: the centre pixel has the object's colour
    red_circle = data.vocabulary.objects.index("red circle")
    centre = np.asarray(data.references[red_circle])[16, 16]
    assert tuple(int(v) for v in centre) == tuple(DEFAULT_PALETTE["red"])
    scene = reference_scene("red", "circle", config)
    assert scene.objects[0].centre == (0.5, 0.5) and scene.objects[0].size == pytest.approx(0.34)
    small = shapes_world_data(2, 4, seed=3, resolution=32, reference_size=0.16).references[red_circle]
    coloured = [int((np.asarray(ref) != 255).any(axis=2).sum()) for ref in (data.references[red_circle], small)]
    assert coloured[0] > 3 * coloured[1] > 0  # area (0.34 / 0.16)**2 = 4.5 x
    with pytest.raises(ProbeConfigError, match="shapes world: size must be"):
        shapes_world_data(2, 2, reference_size=1.5)
    with pytest.raises(ProbeConfigError, match="at least 2 objects"):
        shapes_world_data(3, 1)
    with pytest.raises(ProbeConfigError, match="shapes world"):
        shapes_world_data(3, 9)  # more objects than distinct colours


# --- end to end --------------------------------------------------------------------------------------


def tiny_clip_model(seed: int = 0) -> CLIPModel:
    torch.manual_seed(seed)
    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(tower, max_position_embeddings=77),
        vision_config=dict(tower, image_size=32, patch_size=8),
        projection_dim=16,
    )
    return CLIPModel(config).eval()


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny CLIPModel saved as a Hugging Face folder, and an OpenAI-layout .pt (converted on load)."""
    root = tmp_path_factory.mktemp("image-probes")
    tiny_clip_model().save_pretrained(root / "hf")
    torch.save(tiny_openai_clip(seed=2).state_dict(), root / "openai.pt")
    return root


def _table_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_probe_image_matches_direct_computation(tiny_models):
    data = shapes_world_data(12, 3, seed=1, resolution=32)
    clip = load_clip_model(tiny_models / "hf")
    results = probe_image({"tiny": clip}, data, seed=1, progress=False, device="cpu")
    model = results.models[0]
    images = encode_images(clip, [i.image for i in data.images], progress=False)
    references = encode_images(clip, data.references, progress=False)
    objects = torch.tensor([i.objects for i in data.images])
    assert model.ior == ior_metric(images.double() @ references.double().T, objects)
    assert model.ior_all == ior_diagnostics(images.double() @ references.double().T, objects)
    texts = [text for c in results.captions for text in (c.right_1, c.wrong_1, c.right_2, c.wrong_2)]
    scores = torch.einsum(
        "id,ikd->ik", images.double(), encode_text_features(clip, texts, progress=False).view(12, 4, -1).double()
    )
    assert model.matching.scenario_1.correct == int((scores[:, 0] > scores[:, 1]).sum())
    assert model.matching.scenario_2.correct == int((scores[:, 2] > scores[:, 3]).sum())
    assert model.matching.scenario_1.pairs == model.matching.scenario_2.pairs == 12
    assert results.to_json() == probe_image({"tiny": clip}, data, seed=1, progress=False, device="cpu").to_json()
    with pytest.raises(ProbeConfigError, match="cannot split the images"):
        probe_image({"tiny": "/no/such/model"}, shapes_world_data(2, 2, resolution=16), progress=False)


def test_cli_probe_image_shapes_world_two_models(tiny_models, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["probe-image", "--clip-model", f"hf={tiny_models / 'hf'}", "--clip-model", f"openai={tiny_models / 'openai.pt'}",
            "--num-heads", "2", "--scenes", "20", "--objects", "3", "--resolution", "32", "--seed", "2",
            "--device", "cpu", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["images.jsonl", "results.json", "table.md"]
    results = json.loads((out / "results.json").read_text())
    assert results["slots"] == ["Large", "Small 1", "Small 2"]
    assert results["settings"]["num_images"] == 20 and results["settings"]["vocabulary_size"] == 64
    assert [m["name"] for m in results["models"]] == ["hf", "openai"]
    assert results["models"][0]["identity"] != results["models"][1]["identity"]
    for model in results["models"]:
        assert model["ior"]["total"] == 20 and sum(model["ior"]["counts"]) == model["ior"]["qualified"]
        assert sum(model["ior_all"]["top1_shares"]) + model["ior_all"]["outside"] == pytest.approx(1)
        assert len(model["ioc"]["accuracies"]) == 3 and model["ioc"]["test_size"] == 4
        assert model["ioc"]["chance"] == pytest.approx(1 / 64)
        assert model["matching"]["scenario_1"]["pairs"] == model["matching"]["scenario_2"]["pairs"] == 20
    records = [json.loads(line) for line in (out / "images.jsonl").read_text().splitlines()]
    assert len(records) == 20 and all(r["absent"] not in r["names"] for r in records)
    assert records[0]["scenario_1"][0].startswith(records[0]["names"][0])
    assert records[0]["scenario_2"][1].endswith(records[0]["absent"])

    rows = _table_rows((out / "table.md").read_text())
    assert rows[0] == ["Model", "Probe", "Large", "Small 1", "Small 2", "Details"]
    probes = ["IOR", "IOR (all images)", "IOC"]
    assert [(r[0], r[1]) for r in rows[1:7]] == [(m, p) for m in ("hf", "openai") for p in probes]
    assert "/20 images qualified" in rows[1][5] and "chance 1.6; 16 train / 4 test" in rows[3][5]
    assert "top-1 not in the image" in rows[2][5] and " of 64" in rows[2][5]
    assert rows[7] == ["Model", "First scenario", "Second scenario", "Drop", "Details"]
    assert [r[0] for r in rows[8:]] == ["hf", "openai"]
    assert _table_rows(captured.out) == rows  # both tables are printed too

    assert main(args) == 2  # the folder exists now
    assert "already exists" in capsys.readouterr().err


def test_cli_probe_image_on_a_folder(tiny_models, comco_folder, tmp_path, capsys):
    images, references = comco_folder
    for number in range(6):  # enough images for the IOC split
        _png(images / f"hen_owl_cat__{number}.png", (number * 30, 90, 200))
    out = tmp_path / "folder-report"
    args = ["probe-image", "--model", f"tiny={tiny_models / 'hf'}", "--images", str(images),
            "--references", str(references), "--objects", "3", "--articles", "--device", "cpu",
            "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["num_images"] == 10 and results["vocabulary"][-1] == "red cup"
    assert results["settings"]["articles"] is True
    first = json.loads((out / "images.jsonl").read_text().splitlines()[0])
    assert first["image"] == "cat_dog_hen.png" and first["scenario_1"][0] == "a cat and a dog and a hen"

    (images / "hen_owl_cat__broken.png").write_bytes(b"not a png")
    assert main([*args, "--overwrite"]) == 2
    assert "hen_owl_cat__broken.png" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "just-a-path"], "must look like NAME=VALUE"),
        (["--model", "a=x", "--images", "IMAGES"], "--images and --references go together"),
        (["--model", "a=x", "--images", "IMAGES", "--references", "REFS", "--scenes", "5"], "shapes-world options"),
        (["--model", "a=x", "--images", "IMAGES", "--references", "REFS", "--reference-size", "0.2"],
         "shapes-world options"),
        (["--model", "a=x", "--images", "IMAGES", "--references", "REFS", "--objects", "3"], "has no 'cow.png'"),
        (["--model", "a=x", "--scenes", "2", "--objects", "2", "--resolution", "16"], "cannot split the images"),
        (["--model", "a=x", "--scenes", "5", "--objects", "1"], "at least 2 objects"),
        (["--model", "a=no-such-model", "--scenes", "10", "--objects", "2", "--resolution", "16"],
         "not an existing file or folder"),
    ],
)  # fmt: skip
def test_cli_probe_image_bad_input(comco_folder, tmp_path, capsys, extra, message):
    images, references = comco_folder
    _png(images / "cat_cow_dog.png")
    extra = [str(images) if e == "IMAGES" else str(references) if e == "REFS" else e for e in extra]
    assert main(["probe-image", *extra, "--device", "cpu", "--output-dir", str(tmp_path / "out")]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars
    assert last_line.startswith("error: ") and message in last_line
    assert not (tmp_path / "out").exists()
