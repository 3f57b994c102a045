"""Generation quality by colour (debias_diffusion.shapes_world.quality) and the world's model loading.

Images are rendered shapes-world scenes, whose renderer gives exact per-object masks: the expected
numbers come from those masks or from hand-built record sets, never from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from shapes_world_builders import records_for, scene

from debias_diffusion.errors import ModelNotFoundError, ShapesWorldError, UsageError
from debias_diffusion.prominence.detectors import ColourDetector
from debias_diffusion.shapes_world import COLOURS, SHAPES, render_scene
from debias_diffusion.shapes_world.quality import (
    ColourCounts,
    generation_quality,
    pair_prompt,
    pair_quality,
    random_pairs,
)


def test_colour_counts_hand_made_masks():
    masks = {name: np.zeros((100, 100), dtype=bool) for name in ("red", "blue", "green")}
    masks["red"][:1, :10] = True  # 10 px
    masks["blue"][10:13, :10] = True  # 30 px
    masks["green"][50, 50] = True  # 1 px = 0.0001 of the image: under min_area 0.001, not an extra colour
    counts = ColourCounts()
    counts.add(masks, {"red", "blue"}, min_area=0.001)
    assert (counts.coloured_pixels, counts.requested_pixels, counts.images, counts.images_with_extra) == (41, 40, 1, 0)
    counts.add(masks, {"red"}, min_area=0.001)  # blue's 30 px = 0.003: an extra colour
    assert counts.precision == pytest.approx(50 / 82)
    assert counts.extra_rate == 0.5
    assert ColourCounts().precision == 0.0 and ColourCounts().extra_rate == 0.0


def test_colour_counts_on_rendered_scenes_match_the_renderer_masks():
    rendering = render_scene(scene(("red", "square"), ("blue", "circle"), ("green", "triangle")), size=64)
    detector = ColourDetector()
    masks = detector.colour_masks(rendering.image)
    everything, two = ColourCounts(), ColourCounts()
    everything.add(masks, {"red", "blue", "green"}, detector.min_area)
    two.add(masks, {"red", "blue"}, detector.min_area)
    assert everything.precision == 1.0 and everything.extra_rate == 0.0
    truth = [int(mask.sum()) for mask in rendering.masks]
    assert two.precision == pytest.approx((truth[0] + truth[1]) / sum(truth), abs=0.01)
    assert two.precision < 0.9  # the green triangle is a real share of the coloured pixels
    assert two.extra_rate == 1.0


@pytest.fixture()
def quality_run(tmp_path):
    """Model "A": three 2-object images (list: both found, list: second missed, descriptive: an extra green
    triangle nobody asked for) and one 3-object image; model "B": one 2-object image."""
    images = {
        "a1.png": scene(("red", "square"), ("blue", "circle")),
        "a2.png": scene(("red", "square")),
        "a3.png": scene(("yellow", "star"), ("cyan", "diamond"), ("green", "triangle")),
        "a4.png": scene(("red", "square"), ("blue", "circle"), ("green", "triangle")),
        "b1.png": scene(("purple", "heart"), ("orange", "cross")),
    }
    for name, world_scene in images.items():
        render_scene(world_scene, size=64).image.save(tmp_path / name)
    records = [
        *records_for("a1.png", "A", "list", 0, ["red square", "blue circle"], [True, True]),
        *records_for("a2.png", "A", "list", 0, ["red square", "blue circle"], [True, False], seed=1),
        *records_for("a3.png", "A", "descriptive", 1, ["yellow star", "cyan diamond"], [True, True]),
        *records_for("a4.png", "A", "list", 2, ["red square", "blue circle", "green triangle"], [True] * 3),
        *records_for("b1.png", "B", "list", 3, ["purple heart", "orange cross"], [False, True]),
    ]
    return tmp_path, records, images


def test_generation_quality_on_hand_built_records(quality_run):
    root, records, images = quality_run
    quality = generation_quality(records, root)
    assert list(quality) == ["A", "A / list", "A / descriptive", "B", "B / list"]
    assert quality["A"]["2-object all detected"] == pytest.approx(2 / 3)
    assert quality["A"]["2-object images"] == 3
    assert quality["A"]["3-object all detected"] == 1.0 and quality["A"]["3-object images"] == 1
    assert quality["A / list"]["2-object all detected"] == 0.5
    assert quality["A / descriptive"]["2-object all detected"] == 1.0
    assert "3-object images" not in quality["A / descriptive"]
    assert quality["B"]["2-object all detected"] == 0.0
    # only a3 holds a colour nobody asked for; B's image has exactly its two colours
    assert quality["A / descriptive"]["images with an extra colour"] == 1.0
    assert quality["A"]["images with an extra colour"] == 0.25
    assert quality["A / list"]["images with an extra colour"] == 0.0
    assert quality["B"]["colour precision"] == 1.0 and quality["B"]["images with an extra colour"] == 0.0
    truth = [int(mask.sum()) for mask in render_scene(images["a3.png"], size=64).masks]
    expected = (truth[0] + truth[1]) / sum(truth)
    assert quality["A / descriptive"]["colour precision"] == pytest.approx(expected, abs=0.01)
    assert quality["A / list"]["colour precision"] == 1.0


def test_completeness_vs_reference_pairs_images_and_resamples_clusters():
    from debias_diffusion.errors import ShapesWorldError
    from debias_diffusion.shapes_world.quality import completeness_vs_reference

    records = []
    # 4 clusters (object set x seed), one 2-object image each; R completes all, M misses the second
    # object in clusters 0 and 1, N in cluster 0 only and completes what R does elsewhere
    for object_set, seed_ in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        for model, found in (("R", True), ("M", object_set == 1), ("N", (object_set, seed_) != (0, 0))):
            records += records_for("x.png", model, "list", object_set, ["red square", "blue circle"],
                                   [True, found], seed=seed_)  # fmt: skip
    result = completeness_vs_reference(records, "R", n_resamples=2000)
    assert list(result) == ["R", "M", "N"]
    assert result["R"] == {"complete": 1.0, "difference": 0.0, "ci_low": 0.0, "ci_high": 0.0, "images": 4}
    assert result["M"]["complete"] == 0.5 and result["M"]["difference"] == -0.5
    assert result["N"]["difference"] == -0.25
    assert -1.0 <= result["M"]["ci_low"] < -0.5 < result["M"]["ci_high"] <= 0.0
    assert result["N"]["ci_low"] < -0.25 < result["N"]["ci_high"] == 0.0
    with pytest.raises(ShapesWorldError, match="reference model 'Z'"):
        completeness_vs_reference(records, "Z")
    with pytest.raises(ShapesWorldError, match="'M' lacks 1 of 'R'"):
        completeness_vs_reference(
            [r for r in records if not (r.model == "M" and r.seed == 1 and r.object_set == 1)], "R"
        )


def test_generation_quality_names_a_missing_image(quality_run):
    from debias_diffusion.errors import BadImageError

    root, records, _ = quality_run
    (root / "b1.png").unlink()
    with pytest.raises(BadImageError, match="b1.png"):
        generation_quality(records, root)


def test_pair_quality_on_rendered_pairs():
    pairs = [(("red", "square"), ("blue", "circle")), (("green", "star"), ("yellow", "heart"))]
    images = [
        render_scene(scene(*pairs[0]), size=64).image,
        render_scene(scene(pairs[1][0], ("magenta", "cross")), size=64).image,  # yellow missing, magenta extra
    ]
    quality = pair_quality(images, pairs)
    assert quality["all_objects_rate"] == 0.5
    assert quality["object_recall"] == 0.75
    assert (quality["first_object_rate"], quality["second_object_rate"]) == (1.0, 0.5)
    assert quality["extra_colour_rate"] == 0.5
    assert quality["second_object_mean_area"] < quality["first_object_mean_area"]
    assert 0.4 < quality["colour_precision"] < 0.8  # half of the second image's colour is unrequested
    with pytest.raises(ShapesWorldError, match="one image per pair"):
        pair_quality(images[:1], pairs)


def test_random_pairs_and_prompts():
    pairs = random_pairs(50, seed=3)
    assert pairs == random_pairs(50, seed=3) and pairs != random_pairs(50, seed=4)
    assert all(first[0] != second[0] for first, second in pairs)
    assert {colour for pair in pairs for colour, _ in pair} <= set(COLOURS)
    assert {shape for pair in pairs for _, shape in pair} <= set(SHAPES)
    pair = (("red", "circle"), ("blue", "star"))
    assert pair_prompt(pair, "list") == "a red circle and a blue star"
    assert (
        pair_prompt(pair, "summary") == "A picture of a large red circle and a small blue star on a white background."
    )
    with pytest.raises(ShapesWorldError, match="prompt style"):
        pair_prompt(pair, "poem")


# --- the world's models ---------------------------------------------------------------------------


def test_world_encoders_checks_folders_and_labels(tmp_path):
    from debias_diffusion.shapes_world.world_models import WORLD_ENCODERS, world_encoders

    for name in [*WORLD_ENCODERS.values(), "pipeline"]:
        (tmp_path / name).mkdir()
    (tmp_path / "fix").mkdir()
    encoders = world_encoders(tmp_path, {"FIX-CLIP recipe": str(tmp_path / "fix")})
    assert list(encoders) == ["CLIP-77", "Long-CLIP recipe", "DeBias recipe", "FIX-CLIP recipe"]
    assert encoders["DeBias recipe"] == tmp_path / "debias-recipe"
    with pytest.raises(UsageError, match="CLIP-77"):
        world_encoders(tmp_path, {"CLIP-77": tmp_path / "fix"})
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        world_encoders(tmp_path, {"x": tmp_path / "nowhere"})
    (tmp_path / "pipeline").rmdir()
    with pytest.raises(ModelNotFoundError, match=r"missing pipeline \(in"):
        world_encoders(tmp_path)


def test_load_world_pipeline_swaps_in_the_shipped_long_encoder(single_torch_thread):
    from pathlib import Path

    import torch

    from debias_diffusion.shapes_world.world_models import load_world_pipeline, world_encoders, world_pipeline_loaders

    models = Path(__file__).parents[1] / "examples" / "shapes_world" / "models"
    loaders = world_pipeline_loaders(models, world_encoders(models))
    assert list(loaders) == ["CLIP-77", "Long-CLIP recipe", "DeBias recipe"]
    assert loaders["CLIP-77"].args == (models / "pipeline", None)  # the pipeline's own encoder: nothing swapped
    pipe = loaders["DeBias recipe"]()
    assert pipe.text_encoder.config.max_position_embeddings == 248 and pipe.tokenizer.model_max_length == 248
    assert pipe.text_encoder.dtype == pipe.unet.dtype == torch.float32  # shipped as float16
    with pytest.raises(ModelNotFoundError, match="not a pipeline folder"):
        load_world_pipeline(models / "clip-77" / "missing")
