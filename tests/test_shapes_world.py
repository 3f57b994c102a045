"""The shapes world: seeded scenes, exact rendering, the colour detector against the ground truth, captions, export."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from PIL import Image

from debias_diffusion.errors import ShapesWorldError
from debias_diffusion.prominence.detectors import DEFAULT_PALETTE, DEFAULT_TOLERANCE, ColourDetector
from debias_diffusion.prominence.detectors.colour import _opened
from debias_diffusion.prominence.prompts import read_object_sets
from debias_diffusion.sentences import split_sentences
from debias_diffusion.shapes_world import (
    BACKGROUNDS,
    COLOURS,
    SENTENCE_TEMPLATES,
    SHAPES,
    Background,
    Scene,
    SceneConfig,
    SceneObject,
    caption_scene,
    descriptive_prompt,
    export_dataset,
    list_prompt,
    mention_order,
    object_sentence,
    read_scenes,
    render_scene,
    sample_scene,
    sample_scenes,
    shape_outline,
    summary_sentence,
)
from debias_diffusion.shapes_world import dataset as dataset_module
from debias_diffusion.shapes_world.__main__ import main as shapes_world_main
from debias_diffusion.tokenization import count_tokens
from train_encoder.data import read_annotations

TEXTURED = SceneConfig(textures=("noise", "stripes"))


def one(shape="square", colour="red", size=0.25, centre=(0.5, 0.5), size_class="large") -> SceneObject:
    return SceneObject(shape, colour, size, centre, size_class)


def scene_of(*objects: SceneObject, background: Background | None = None, seed: int = 0, index: int = 0) -> Scene:
    return Scene(seed, index, objects, background or Background())


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


# --- scenes --------------------------------------------------------------------------------------------------


def test_scenes_are_seeded_and_independent_of_generation_order():
    forward = sample_scenes(7, 12, TEXTURED)
    backward = [sample_scene(7, index, TEXTURED) for index in reversed(range(12))][::-1]
    assert forward == backward == sample_scenes(7, 12, dataclasses.replace(TEXTURED))
    assert sample_scenes(7, 4, TEXTURED, start=8) == forward[8:]
    assert forward != sample_scenes(8, 12, TEXTURED)
    # the objects do not depend on the texture options (those draw from their own stream)
    assert [s.objects for s in forward] == [s.objects for s in sample_scenes(7, 12)]
    for scene in forward[:4]:  # the same scene renders to the same pixels, bit for bit
        assert np.array_equal(pixels(render_scene(scene).image), pixels(render_scene(scene).image))
    assert Scene.from_dict(json.loads(json.dumps(forward[3].to_dict()))) == forward[3]
    assert SceneConfig.from_dict(json.loads(json.dumps(TEXTURED.to_dict()))) == TEXTURED


def test_scenes_have_distinct_palette_colours_and_counts_in_range():
    for config, low, high in (
        (SceneConfig(), 2, 5),
        (SceneConfig(min_objects=3, max_objects=4, size_mode="free"), 3, 4),
    ):
        scenes = sample_scenes(0, 300, config)
        counts = [len(scene.objects) for scene in scenes]
        assert set(counts) == set(range(low, high + 1))
        for scene in scenes:
            colours = [obj.colour for obj in scene.objects]
            assert len(set(colours)) == len(colours) and set(colours) <= set(DEFAULT_PALETTE)
        seen = {(obj.shape, obj.colour) for scene in scenes for obj in scene.objects}
        assert {shape for shape, _ in seen} == set(SHAPES) and {colour for _, colour in seen} == set(COLOURS)
    assert tuple(DEFAULT_PALETTE) == COLOURS and len(SHAPES) == 8


def test_shape_and_colour_names_are_single_clip_tokens_where_possible(clip_tokenizer):
    assert all(len(clip_tokenizer.tokenize(shape)) == 1 for shape in SHAPES)
    assert [c for c in COLOURS if len(clip_tokenizer.tokenize(c)) > 1] == ["cyan"]  # the palette's, not ours


def test_one_large_mode_has_one_clearly_largest_object():
    for scene in sample_scenes(1, 200):
        large = [i for i, obj in enumerate(scene.objects) if obj.size_class == "large"]
        assert len(large) == 1 and scene.draw_order[0] == large[0]
        big = scene.objects[large[0]]
        # sizes are sides of equal-area squares: 0.30 / 0.19 > 1.5 in side, > 2.4 in area, for every shape
        assert all(big.size >= 1.5 * obj.size for obj in scene.objects if obj is not big)
        assert all(big.area >= 2.4 * obj.area for obj in scene.objects if obj is not big)
    free = sample_scenes(1, 200, SceneConfig(size_mode="free"))
    assert {obj.size_class for scene in free for obj in scene.objects} == {"small", "medium-sized", "large"}
    assert all(0.13 <= obj.size <= 0.27 for scene in free for obj in scene.objects)


def test_placement_keeps_objects_apart_unless_overlap_is_allowed():
    config = SceneConfig()
    for scene in sample_scenes(2, 150, config):
        for a, b in itertools.combinations(scene.objects, 2):
            gap = max(b.box[0] - a.box[2], a.box[0] - b.box[2], b.box[1] - a.box[3], a.box[1] - b.box[3])
            assert gap >= config.min_gap - 1e-12
        for obj in scene.objects:
            assert min(obj.box) >= config.margin - 1e-12 and max(obj.box) <= 1 - config.margin + 1e-12
    crowded = SceneConfig(max_overlap=0.6, min_gap=0.0, min_objects=4)
    renderings = [render_scene(scene) for scene in sample_scenes(2, 30, crowded)]
    assert any(r.visible_areas[i] < r.full_areas[i] - 0.005 for r in renderings for i in range(len(r.visible_areas)))


def test_positions_and_relations():
    scene = scene_of(
        one("circle", "red", centre=(0.2, 0.2)),
        one("star", "blue", 0.15, (0.5, 0.25), "small"),
        one("heart", "green", 0.15, (0.85, 0.9), "small"),
        one("cross", "yellow", 0.15, (0.5, 0.5), "small"),
    )
    positions = [(obj.position, obj.position_phrase) for obj in scene.objects]
    assert positions == [
        ("top left", "in the top left"),
        ("top", "at the top"),
        ("bottom right", "in the bottom right"),
        ("centre", "in the centre"),
    ]
    assert scene.relation(0, 1) == "to the left of" and scene.relation(1, 0) == "to the right of"
    assert scene.relation(1, 3) == "above" and scene.relation(3, 1) == "below"
    assert scene.nearest(0) == 1 and scene.nearest(2) == 3
    assert len(scene.relations()) == 12 and (0, "to the left of", 1) in scene.relations()


def test_bad_settings_raise_shapes_world_errors():
    for kwargs in (
        {"min_objects": 0},
        {"min_objects": 4, "max_objects": 3},
        {"colours": ("red", "blue")},  # 5 objects need 5 colours
        {"colours": ("red", "pink", "blue", "green", "cyan")},
        {"shapes": ("circle", "blob")},
        {"size_mode": "huge"},
        {"large_size": (0.2, 0.25)},  # not clearly larger than the small ones
        {"max_overlap": 2},
        {"textures": ("plaid",)},
        {"background": "beige"},
        {"texture_amplitude": 80},
    ):
        with pytest.raises(ShapesWorldError):
            SceneConfig(**kwargs)
    with pytest.raises(ShapesWorldError, match="distinct colours"):
        scene_of(one(colour="red"), one(colour="red", centre=(0.2, 0.2)))
    with pytest.raises(ShapesWorldError, match="non-negative"):
        sample_scene(-1, 0)
    with pytest.raises(ShapesWorldError, match="at least 8"):
        render_scene(sample_scene(0, 0), 4)
    assert issubclass(ShapesWorldError, ValueError)


# --- rendering -----------------------------------------------------------------------------------------------


def outline_length(obj: SceneObject, size: int) -> float:
    """Perimeter of the object's outline, in output pixels."""
    points = shape_outline(obj.shape, obj.centre, obj.size)
    if points is None:
        return 2 * math.pi * obj.size / math.sqrt(math.pi) * size
    return float(np.linalg.norm(points - np.roll(points, -1, axis=0), axis=1).sum()) * size


def test_a_square_covers_its_area_exactly_on_the_grid_and_closely_off_it():
    on_grid = render_scene(scene_of(one("square", size=20 / 64, centre=(30 / 64, 30 / 64))), 64)
    assert on_grid.masks[0].sum() == 400 and on_grid.visible_areas[0] * 64**2 == 400
    assert on_grid.boxes[0] == (20, 20, 40, 40)
    assert (pixels(on_grid.image)[20:40, 20:40] == DEFAULT_PALETTE["red"]).all()
    for size in (48, 64, 100):
        obj = one("square", size=0.3137, centre=(0.4719, 0.5331))
        rendering = render_scene(scene_of(obj), size)
        side = obj.size * size
        # 4 x 4 sub-pixel sampling puts each edge within a quarter pixel: area within side / 2 (+ a corner)
        assert abs(rendering.visible_areas[0] * size**2 - side**2) <= side / 2 + 1 / 16
        # a mask pixel is one covered more than half: each partly covered pixel errs by at most half a pixel
        assert abs(rendering.masks[0].sum() - side**2) <= 0.5 * 4 * (side + 1)


def test_every_shape_covers_size_squared_within_the_sampling_error():
    for shape in SHAPES:
        for size in (64, 128):
            obj = one(shape, size=0.37, centre=(0.507, 0.493))
            rendering = render_scene(scene_of(obj), size)
            # every shape has unit area at size 1; each sub-pixel row an edge crosses errs by under one
            # sub-pixel (1/16 px), and an outline of length L crosses at most 4 L rows: |error| < L / 4
            error = abs(rendering.full_areas[0] - obj.area) * size**2
            assert error < outline_length(obj, size) / 4, shape
            assert rendering.visible_areas[0] == rendering.full_areas[0]
            x0, y0, x1, y1 = rendering.boxes[0]
            bx0, by0, bx1, by1 = (v * size for v in obj.box)
            # the mask's box is the shape's, less sharp tips that cover under half of their pixels
            assert np.allclose((x0, y0, x1, y1), (bx0, by0, bx1, by1), atol=2), shape


def test_occlusion_small_objects_are_drawn_over_large_ones():
    big = one("square", "red", 0.5, (0.4, 0.4), "large")
    small = one("circle", "blue", 0.2, (0.5, 0.52), "small")
    first, second = render_scene(scene_of(big, small)), render_scene(scene_of(small, big))
    assert np.array_equal(pixels(first.image), pixels(second.image))  # draw order is by size, not list order
    alone = render_scene(scene_of(big))
    assert first.visible_areas[1] == first.full_areas[1]  # the small circle is whole
    assert first.visible_areas[0] < first.full_areas[0] == alone.full_areas[0]
    # here the circle lies wholly inside the square, so what the square loses is the circle's area
    assert first.full_areas[0] - first.visible_areas[0] == pytest.approx(first.full_areas[1], abs=1e-12)
    assert not (first.masks[0] & first.masks[1]).any()
    assert (first.coverage[0] + first.coverage[1] <= 1).all()
    for rendering in (render_scene(s) for s in sample_scenes(3, 20, SceneConfig(max_overlap=0.6, min_gap=0))):
        stacked = np.stack(rendering.masks)
        assert stacked.sum(axis=0).max() <= 1
        assert all(v <= f for v, f in zip(rendering.visible_areas, rendering.full_areas, strict=True))
        assert rendering.mask_areas == tuple(float(m.mean()) for m in rendering.masks)


@pytest.mark.parametrize("colour", list(BACKGROUNDS))
def test_textured_backgrounds_hold_no_palette_colour(colour):
    detector = ColourDetector()
    palette = np.array(list(DEFAULT_PALETTE.values()), dtype=float)
    for texture in ("noise", "stripes"):
        empty = scene_of(background=Background(colour, texture))
        image = render_scene(empty, 64).image
        values = pixels(image).astype(float)
        assert (values[..., 0] == values[..., 1]).all() and (values[..., 1] == values[..., 2]).all()  # grey
        assert 0 < np.abs(values - BACKGROUNDS[colour]).max() <= 12 and values.std() > 1  # textured, faintly
        # every pixel is far (more than 2 x the detector's tolerance) from every palette colour
        distances = np.linalg.norm(values[:, :, None, :] - palette[None, None], axis=-1)
        assert distances.min() > 2 * DEFAULT_TOLERANCE
        assert not any(mask.any() for mask in detector.colour_masks(image).values())
        # the texture is seeded by the scene, and differs between scenes
        assert np.array_equal(values, pixels(render_scene(empty, 64).image))
        other = dataclasses.replace(empty, index=1)
        assert not np.array_equal(values, pixels(render_scene(other, 64).image))


# --- the colour detector against the ground truth ------------------------------------------------------------


def detector_tolerance(rendering, index: int, per_partial_pixel: float) -> float:
    """How far (in pixels) the colour detector's area may be from the visible area; see the comments below."""
    cover, mask = rendering.coverage[index], rendering.masks[index]
    partial = int(((cover > 0) & (cover < 1)).sum())
    opening_loss = int(mask.sum() - _opened(mask).sum())
    return per_partial_pixel * partial + opening_loss + 1


DETECTOR_CASES = [
    (48, SceneConfig()),
    (64, SceneConfig()),
    (64, TEXTURED),
    (64, SceneConfig(size_mode="free", textures=("noise",))),
    (64, SceneConfig(background="black", textures=("stripes",))),
    (96, SceneConfig(background="light grey", textures=("noise", "stripes"))),
    (128, SceneConfig(background="grey", textures=("none", "stripes"))),
]


@pytest.mark.parametrize(("size", "config"), DETECTOR_CASES)
def test_colour_detector_finds_every_object_with_its_visible_area(size, config):
    """Tolerance, per object: 0.55 px per partly covered pixel + what the 3x3 opening removes + 1 px.

    The detector counts a pixel when the colour covers more than half of it, so each anti-aliased
    pixel is off by at most half a pixel (0.4 covered: dropped, -0.4; 0.6: kept, +0.4); a texture's
    grey offset (<= 12 levels) moves a pixel's colour weight by under 0.05, hence 0.55. The
    detector then opens each mask with a 3x3 square, which removes points thinner than 3 px (star
    tips, the heart's point): that loss is computed on the ground-truth mask. 1 px covers float
    rounding. Without a texture the bound is reached exactly by a straight edge through the middle
    of a pixel row (coverage 0.5 everywhere, all dropped).
    """
    detector = ColourDetector()
    renderings = [render_scene(scene, size) for scene in sample_scenes(5, 8, config)]
    labels = [r.labels for r in renderings]
    results = detector.measure([r.image for r in renderings], labels)
    absent = [[f"{c} {SHAPES[0]}" for c in COLOURS if c not in {o.colour for o in r.scene.objects}] for r in renderings]
    for rendering, measured, missing in zip(
        renderings, results, detector.measure([r.image for r in renderings], absent), strict=True
    ):
        for index, measurement in enumerate(measured):
            assert measurement.present, measurement
            error = abs(measurement.mask_area - rendering.visible_areas[index]) * size**2
            assert error <= detector_tolerance(rendering, index, 0.55), (size, rendering.scene.objects[index])
            x0, y0, x1, y1 = rendering.boxes[index]
            bx0, by0, bx1, by1 = measurement.box
            assert x0 - 1 <= bx0 and y0 - 1 <= by0 and bx1 <= x1 + 1 and by1 <= y1 + 1  # within a pixel (textures)
        assert not any(m.present for m in missing)


def test_colour_detector_finds_occluded_objects():
    """Where two shapes touch, the shared anti-aliased pixels blend two palette colours and belong to
    neither (the detector's rule), so a partly covered pixel may now be off by a whole pixel."""
    config = SceneConfig(max_overlap=0.5, min_gap=0.0, size_mode="free", textures=("noise",))
    renderings = [render_scene(scene, 64) for scene in sample_scenes(6, 10, config)]
    assert any(r.visible_areas[i] < r.full_areas[i] for r in renderings for i in range(len(r.masks)))
    results = ColourDetector().measure([r.image for r in renderings], [r.labels for r in renderings])
    for rendering, measured in zip(renderings, results, strict=True):
        for index, measurement in enumerate(measured):
            assert measurement.present
            error = abs(measurement.mask_area - rendering.visible_areas[index]) * 64**2
            assert error <= detector_tolerance(rendering, index, 1.0)


# --- captions ------------------------------------------------------------------------------------------------


def test_long_caption_is_the_summary_then_one_sentence_per_object_in_mention_order():
    for scene in sample_scenes(4, 60, SceneConfig(textures=("none", "noise", "stripes"))):
        for order in ("size", "random"):
            caption = caption_scene(scene, order)
            sentences = split_sentences(caption.long)
            assert len(sentences) == 1 + len(scene.objects)
            assert sentences[0] == caption.short == summary_sentence(scene, caption.order)
            assert sentences[1:] == [object_sentence(scene, i) for i in caption.order]
            assert sorted(caption.order) == list(range(len(scene.objects)))
            summary = caption.short
            named = [summary.index(scene.objects[i].full_phrase) for i in caption.order]
            assert named == sorted(named)  # the summary lists the objects in mention order
            for i, sentence in zip(caption.order, sentences[1:], strict=True):
                obj = scene.objects[i]
                mentioned = [sentence.index(o.full_phrase) for o in scene.objects if o.full_phrase in sentence]
                assert sentence.index(obj.full_phrase) == min(mentioned)  # the object comes first
                assert obj.position_phrase in sentence.lower()
                assert scene.relation(i, scene.nearest(i)) in sentence
                assert scene.objects[scene.nearest(i)].full_phrase in sentence
        size_order = mention_order(scene, "size")
        sizes = [scene.objects[i].size for i in size_order]
        assert sizes == sorted(sizes, reverse=True)
    assert caption_scene(scene, "random") == caption_scene(scene, "random")
    random_orders = [mention_order(s, "random") for s in sample_scenes(4, 30)]
    assert any(o != mention_order(s, "size") for o, s in zip(random_orders, sample_scenes(4, 30), strict=True))


def test_caption_example_and_background_words():
    scene = scene_of(
        one("circle", "red", 0.34, (0.25, 0.25)),
        one("star", "blue", 0.15, (0.8, 0.2), "small"),
        one("square", "orange", 0.14, (0.8, 0.8), "small"),
        background=Background("light grey", "stripes"),
    )
    caption = caption_scene(scene, "size", varied=False)
    assert caption.short == (
        "A picture of a large red circle, a small blue star and a small orange square on a light grey "
        "background with faint stripes."
    )
    assert split_sentences(caption.long)[1] == (
        "The large red circle sits in the top left of the image, to the left of the small blue star."
    )
    assert caption_scene(scene_of(one())).long.endswith("The large red square sits in the centre of the image.")


def test_captions_fit_clip_token_limits(clip_tokenizer):
    worst_parts = {"object": "medium-sized cyan triangle", "other": "medium-sized cyan triangle"}
    assert count_tokens(clip_tokenizer, "medium-sized cyan triangle") == max(
        count_tokens(clip_tokenizer, f"{size} {colour} {shape}")
        for size in ("small", "medium-sized", "large")
        for colour in COLOURS
        for shape in SHAPES
    )
    positions = ["in the top left", "at the top", "on the left", "in the centre", "in the bottom right"]
    relations = ["to the left of", "to the right of", "above", "below"]
    longest_sentence = max(
        count_tokens(
            clip_tokenizer,
            t.format(**worst_parts, position=p, Position=p.capitalize(), relation=r),
        )
        for t in SENTENCE_TEMPLATES
        for p in positions
        for r in relations
    )
    longest_summary = count_tokens(
        clip_tokenizer,
        "A picture of " + ", ".join(["a medium-sized cyan triangle"] * 4) + " and a medium-sized cyan triangle "
        "on a light grey background with faint stripes.",
    )
    # an upper bound over every 5-object caption, within 248 positions less SOT and EOT
    assert longest_summary <= 75 and longest_summary + 5 * longest_sentence <= 246
    config = SceneConfig(min_objects=5, size_mode="free", textures=("stripes",), background="light grey")
    for scene in sample_scenes(0, 20, config):
        caption = caption_scene(scene, "random")
        assert count_tokens(clip_tokenizer, caption.short) <= longest_summary
        assert count_tokens(clip_tokenizer, caption.long) <= longest_summary + 5 * longest_sentence


def test_prompts_follow_the_given_order():
    scene = scene_of(
        one("circle", "red", 0.34, (0.25, 0.3)),
        one("star", "blue", 0.15, (0.8, 0.2), "small"),
        one("square", "green", 0.14, (0.7, 0.8), "small"),
    )
    assert (
        list_prompt(scene, ["blue star", "red circle", "green square"])
        == "a blue star, a red circle and a green square"
    )
    assert list_prompt(scene, [1, 0, 2]) == list_prompt(scene, ["blue star", "large red circle", "green square"])
    assert (
        list_prompt(scene_of(one(), one("star", "blue", centre=(0.1, 0.1))), [0, 1]) == "a red square and a blue star"
    )
    assert list_prompt(scene, [2, 0, 1], sizes=True) == "a small green square, a large red circle and a small blue star"
    sentences = {}
    for ordering in itertools.permutations(range(3)):
        prompt = descriptive_prompt(scene, ordering)
        parts = split_sentences(prompt)
        assert parts[0] == summary_sentence(scene, ordering)
        assert parts[1:] == [object_sentence(scene, i) for i in ordering]  # permuting only permutes the sentences
        sentences.update(zip(ordering, parts[1:], strict=True))
        assert prompt == caption_scene(scene, ordering).long
    assert len(set(sentences.values())) == 3
    for bad in ([0, 1], [0, 1, 1], ["pink circle", 1, 2], [0, 1, 3], "biggest"):
        with pytest.raises(ShapesWorldError):
            list_prompt(scene, bad)


# --- dataset export ------------------------------------------------------------------------------------------


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_writes_images_captions_ground_truth_and_object_sets(tmp_path):
    out = tmp_path / "world"
    config = SceneConfig(textures=("none", "noise"))
    result = export_dataset(out, 6, size=48, seed=3, config=config, progress=False)
    assert (result.images_written, result.images_skipped) == (6, 0)
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:06d}.png" for i in range(6)]
    records = read_annotations(out / "captions.jsonl")
    scenes = read_scenes(out / "scenes.jsonl")
    assert scenes == sample_scenes(3, 6, config)
    truth = [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]
    for record, scene, row in zip(records, scenes, truth, strict=True):
        caption = caption_scene(scene, "size")
        assert (record.long_caption, record.short_caption) == (caption.long, caption.short)
        assert record.image == row["image"] and (out / record.image).is_file()
        rendering = render_scene(scene, 48)
        assert np.array_equal(pixels(Image.open(out / record.image)), pixels(rendering.image))
        assert row["mention_order"] == list(caption.order)
        assert [o["phrase"] for o in row["objects"]] == rendering.labels
        assert [o["visible_area"] for o in row["objects"]] == [round(a, 6) for a in rendering.visible_areas]
        assert len(row["relations"]) == len(scene.objects) * (len(scene.objects) - 1)
    sets = read_object_sets(out / "object_sets.json")
    assert [s.objects for s in sets] == [tuple(r.labels) for r in map(lambda s: render_scene(s, 48), scenes)]
    assert json.loads((out / "config.json").read_text())["seed"] == 3


def test_export_is_idempotent_and_refuses_other_settings(tmp_path):
    out = tmp_path / "world"
    export_dataset(out, 4, progress=False)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    contents = snapshot(out)
    again = export_dataset(out, 4, progress=False)
    assert (again.images_written, again.images_skipped) == (0, 4)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing rewritten
    assert snapshot(out) == contents
    more = export_dataset(out, 6, progress=False)  # a larger count extends the export
    assert (more.images_written, more.images_skipped) == (2, 4)
    assert len(read_annotations(out / "captions.jsonl")) == 6
    with pytest.raises(ShapesWorldError, match="other settings"):
        export_dataset(out, 4, size=32, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ShapesWorldError, match="not a shapes-world export"):
        export_dataset(tmp_path / "other", 2, progress=False)


def test_interrupted_export_completes_to_the_same_files(tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    export_dataset(reference, 5, seed=1, progress=False)
    out = tmp_path / "world"
    real_render = dataset_module.render_scene

    def failing_render(scene, *args, **kwargs):
        if scene.index == 3:
            raise KeyboardInterrupt
        return real_render(scene, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "render_scene", failing_render)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(out, 5, seed=1, progress=False)
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    assert not (out / "captions.jsonl").exists()
    monkeypatch.setattr(dataset_module, "render_scene", real_render)
    (out / "images" / "000001.png").unlink()  # and a file lost since
    resumed = export_dataset(out, 5, seed=1, progress=False)
    assert (resumed.images_written, resumed.images_skipped) == (3, 2)
    assert snapshot(out) == snapshot(reference)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_module_entry_point(tmp_path, capsys):
    out = tmp_path / "cli"
    assert shapes_world_main([str(out), "--scenes", "3", "--size", "32", "--seed", "2", "--no-progress"]) == 0
    assert "3 scenes (3 images written" in capsys.readouterr().out
    assert len(read_annotations(out / "captions.jsonl")) == 3
    assert shapes_world_main([str(out), "--scenes", "3", "--size", "48", "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err
