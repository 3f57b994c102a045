"""Prominence metrics and report on synthetic records whose expected numbers are worked out by hand here."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from itertools import permutations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from debias_diffusion.errors import DebiasDiffusionError, ProminenceDataError
from debias_diffusion.prominence.measurement import ProminenceRecord
from debias_diffusion.prominence.metrics import (
    DEFINITIONS,
    by_position,
    compare_models,
    first_mention_advantage,
    pair_order_effects,
    validate_records,
)

# --- builders ------------------------------------------------------------------------------------


def image_records(
    ordering, seed, areas, *, model="m", object_set=0, template="t", present=None, boxes=None, image=None
):
    """One image's records; ``areas`` / ``present`` / ``boxes`` are by prompt position (area 0 = not detected)."""
    present = [a > 0 for a in areas] if present is None else present
    image = image or f"{model}/{object_set}/{template}/{'-'.join(ordering)}_{seed}.png"
    return [
        ProminenceRecord(
            model=model,
            object_set=object_set,
            template=template,
            ordering=tuple(ordering),
            seed=seed,
            image=image,
            object=name,
            position=position + 1,
            present=present[position],
            score=0.9 if present[position] else 0.0,
            box=None if boxes is None else boxes[position],
            box_area=areas[position],
            mask_area=None,
        )
        for position, name in enumerate(ordering)
    ]


def two_object_records(model="m", first_area=0.375, second_area=0.125, seeds=(0, 1)):
    """cat/dog in both orders: the first-named object always covers 0.375, the second 0.125 (share 0.75 / 0.25)."""
    records = []
    for seed in seeds:
        for ordering in (("cat", "dog"), ("dog", "cat")):
            records += image_records(ordering, seed, [first_area, second_area], model=model)
    return records


def three_object_records():
    """Four images of {a, b, c}; the expected numbers in the tests below are worked out from this table.

    (a,b,c) seed 0: areas .2 .1 .1  -> shares .5 .25 .25
    (a,b,c) seed 1: areas .3 0  .1  -> b missed; shares .75 0 .25
    (c,b,a) seed 0: nothing detected -> no shares
    (c,b,a) seed 1: areas .1 .1 .2  -> shares .25 .25 .5
    """
    return [
        *image_records(("a", "b", "c"), 0, [0.2, 0.1, 0.1]),
        *image_records(("a", "b", "c"), 1, [0.3, 0.0, 0.1]),
        *image_records(("c", "b", "a"), 0, [0.0, 0.0, 0.0]),
        *image_records(("c", "b", "a"), 1, [0.1, 0.1, 0.2]),
    ]


def random_records(model="m", n_sets=3, seeds=range(8), objects=("a", "b", "c"), rng_seed=0, bias=0.1):
    """Every ordering of each set; areas random with a first-position boost, some objects missed."""
    rng = np.random.default_rng(rng_seed)
    records = []
    for object_set in range(n_sets):
        names = [f"{name}{object_set}" for name in objects]
        for seed in seeds:
            for ordering in permutations(names):
                areas = rng.uniform(0.02, 0.3, len(ordering))
                areas[0] += bias
                areas[rng.uniform(size=len(ordering)) < 0.15] = 0.0
                records += image_records(ordering, seed, list(areas), model=model, object_set=object_set)
    return records


def mirrored(records):
    """The same measurements with every prompt ordering reversed (positions flipped, values kept)."""
    out = []
    for record in records:
        ordering = tuple(reversed(record.ordering))
        out.append(dataclasses.replace(record, ordering=ordering, position=ordering.index(record.object) + 1))
    return out


# --- by position ---------------------------------------------------------------------------------


def test_two_objects_position_one_share_is_three_quarters():
    rows = by_position(two_object_records(), n_resamples=200)
    assert [row.position for row in rows] == [1, 2]
    first, second = rows
    assert first.measurements == second.measurements == 4
    assert first.presence_rate.value == 1.0 and first.omission_rate.value == 0.0
    assert first.mean_area.value == 0.375 and second.mean_area.value == 0.125
    assert first.mean_area_share.value == 0.75
    assert second.mean_area_share.value == 0.25
    assert first.no_detection_measurements == 0 and first.share_measurements == 4

    advantage = first_mention_advantage(two_object_records(), n_resamples=200)[0]
    assert advantage.area_share.value == pytest.approx(0.5)
    assert advantage.presence.value == 0.0
    assert advantage.images == 4 and advantage.clusters == 2
    cat = {obj.object: obj for obj in advantage.per_object}["cat"]
    assert (cat.area_share_first, cat.area_share_later) == (0.75, 0.25)
    assert cat.measurements_first == cat.measurements_later == 2


def test_by_position_with_misses_and_an_image_without_detections():
    rows = by_position(three_object_records(), n_resamples=100)
    expected = {  # position: (presence, mean area, mean share); worked out in three_object_records' docstring
        1: (0.75, 0.15, 0.5),
        2: (0.5, 0.05, 1 / 6),
        3: (0.75, 0.1, 1 / 3),
    }
    assert [row.position for row in rows] == [1, 2, 3]
    for row in rows:
        presence, area, share = expected[row.position]
        assert row.measurements == 4
        assert row.presence_rate.value == pytest.approx(presence)
        assert row.omission_rate.value == pytest.approx(1 - presence)
        assert row.mean_area.value == pytest.approx(area)
        assert row.mean_area_share.value == pytest.approx(share)
        assert row.share_measurements == 3 and row.no_detection_measurements == 1
    assert rows[0].mean_area_when_detected == pytest.approx(0.6 / 3)


def test_first_mention_advantage_hand_computed():
    advantage = first_mention_advantage(three_object_records(), n_resamples=100)[0]
    # per image presence: 1-1, 1-.5, 0-0, 1-1 -> mean .125; share: .25, .625, (none), -.125 -> mean .25
    assert advantage.presence.value == pytest.approx(0.125)
    assert advantage.area_share.value == pytest.approx(0.25)
    assert advantage.images == 4 and advantage.images_without_detection == 1 and advantage.clusters == 2
    objects = {obj.object: obj for obj in advantage.per_object}
    a, b, c = objects["a"], objects["b"], objects["c"]
    assert (a.presence_first, a.presence_later) == (1.0, 0.5)
    assert a.area_share_first == pytest.approx(0.625) and a.area_share_later == pytest.approx(0.5)
    assert a.area_share_advantage.value == pytest.approx(0.125)
    assert c.presence_advantage.value == pytest.approx(-0.5) and c.area_share_advantage.value == pytest.approx(0.0)
    assert b.measurements_first == 0 and math.isnan(b.presence_advantage.value)  # never named first
    assert b.omission_rate == pytest.approx(0.5)  # missed in 2 of its 4 images
    assert advantage.objects_compared == 2
    assert advantage.object_controlled_presence.value == pytest.approx(0.0)  # mean(.5, -.5)
    assert advantage.object_controlled_area_share.value == pytest.approx(0.0625)  # mean(.125, 0)


def test_object_controlled_advantage_removes_size_differences():
    """The cat is always bigger than the dog, whatever the order: no real first-mention effect."""
    records = []
    for seed in range(3):
        records += image_records(("cat", "dog"), seed, [0.3, 0.1])
        records += image_records(("dog", "cat"), seed, [0.1, 0.3])
    advantage = first_mention_advantage(records, n_resamples=50)[0]
    assert advantage.area_share.value == pytest.approx(0.0)
    assert advantage.object_controlled_area_share.value == pytest.approx(0.0)
    # Only ever-first cats: the pooled advantage looks large, the object-controlled one cannot be computed.
    cats_first = [r for r in records if r.ordering == ("cat", "dog")]
    biased = first_mention_advantage(cats_first, n_resamples=50)[0]
    assert biased.area_share.value == pytest.approx(0.5)
    assert math.isnan(biased.object_controlled_area_share.value) and biased.objects_compared == 0


# --- bootstrap -----------------------------------------------------------------------------------


def test_bootstrap_interval_contains_estimate_and_is_seeded():
    records = random_records()
    first = first_mention_advantage(records, n_resamples=400, seed=3)[0]
    again = first_mention_advantage(records, n_resamples=400, seed=3)[0]
    other = first_mention_advantage(records, n_resamples=400, seed=4)[0]
    assert first == again
    assert (first.area_share.low, first.area_share.high) != (other.area_share.low, other.area_share.high)
    for estimate in (first.presence, first.area_share, first.object_controlled_area_share):
        assert estimate.low < estimate.value < estimate.high
    assert first.area_share.value > 0.1  # the first-position boost shows
    assert first.area_share.low > 0
    for row in by_position(records, n_resamples=200):
        assert row.mean_area_share.low <= row.mean_area_share.value <= row.mean_area_share.high
        assert row.presence_rate.low <= row.presence_rate.value <= row.presence_rate.high


def test_bootstrap_resamples_clusters_not_images():
    """Within each (set, seed) cluster the orderings differ, but all clusters are identical: a cluster
    bootstrap has nothing to vary, so every interval collapses to the point (an image bootstrap would not)."""
    records = []
    for seed in range(6):
        records += image_records(("cat", "dog"), seed, [0.375, 0.125])
        records += image_records(("dog", "cat"), seed, [0.25, 0.25], present=[True, True])
    advantage = first_mention_advantage(records, n_resamples=300)[0]
    for estimate in (advantage.area_share, advantage.presence, advantage.object_controlled_area_share):
        assert estimate.low == pytest.approx(estimate.value, abs=1e-12)
        assert estimate.high == pytest.approx(estimate.value, abs=1e-12)
    first = by_position(records, n_resamples=300)[0]
    assert first.mean_area_share.value == pytest.approx(0.625)  # (.75 + .5) / 2
    assert first.mean_area_share.high - first.mean_area_share.low == pytest.approx(0.0, abs=1e-12)


def test_zero_resamples_gives_no_interval():
    advantage = first_mention_advantage(two_object_records(), n_resamples=0)[0]
    assert advantage.area_share.value == pytest.approx(0.5)
    assert math.isnan(advantage.area_share.low) and math.isnan(advantage.area_share.high)


def test_a_models_intervals_do_not_depend_on_the_other_models():
    alone = first_mention_advantage(random_records("x"), n_resamples=200)[0]
    together = first_mention_advantage(random_records("w", rng_seed=5) + random_records("x"), n_resamples=200)
    assert [item.model for item in together] == ["w", "x"]
    assert together[1] == alone


# --- pairs ---------------------------------------------------------------------------------------


def test_pair_effects_hand_computed():
    effects = {(e.object_a, e.object_b): e for e in pair_order_effects(three_object_records())}
    assert sorted(effects) == [("a", "b"), ("a", "c"), ("b", "c")]
    ab = effects[("a", "b")]
    assert (ab.images_a_first, ab.images_b_first, ab.share_images_a_first, ab.share_images_b_first) == (2, 2, 2, 1)
    assert ab.a_area_share_effect == pytest.approx(0.125)  # .625 - .5
    assert ab.b_area_share_effect == pytest.approx(0.125)  # .25 - .125
    assert ab.a_presence_effect == pytest.approx(0.5) and ab.b_presence_effect == pytest.approx(0.0)
    bc = effects[("b", "c")]
    assert bc.a_area_share_effect == pytest.approx(-0.125)  # b: .125 - .25
    assert bc.b_area_share_effect == pytest.approx(0.0)  # c: .25 - .25
    assert bc.mean_area_share_effect == pytest.approx(-0.0625)


def test_pair_effects_flip_sign_when_orderings_are_mirrored():
    records = random_records(n_sets=2, seeds=range(4))
    original = {(e.object_a, e.object_b): e for e in pair_order_effects(records)}
    flipped = {(e.object_a, e.object_b): e for e in pair_order_effects(mirrored(records))}
    assert original.keys() == flipped.keys() and len(original) == 6
    assert any(abs(e.a_area_share_effect) > 0.01 for e in original.values())
    for key, effect in original.items():
        mirror = flipped[key]
        assert (mirror.images_a_first, mirror.images_b_first) == (effect.images_b_first, effect.images_a_first)
        for name in ("a_area_share_effect", "b_area_share_effect", "a_presence_effect", "b_presence_effect"):
            assert getattr(mirror, name) == pytest.approx(-getattr(effect, name))


def test_pair_effect_is_nan_without_both_orders():
    effect = pair_order_effects(image_records(("cat", "dog"), 0, [0.3, 0.1]))[0]
    assert (effect.images_a_first, effect.images_b_first) == (1, 0)
    assert math.isnan(effect.a_area_share_effect) and math.isnan(effect.mean_presence_effect)


# --- no detections, comparison -------------------------------------------------------------------


def test_images_with_no_detection_at_all():
    records = [*image_records(("cat", "dog"), 0, [0.0, 0.0]), *image_records(("dog", "cat"), 0, [0.0, 0.0])]
    row = by_position(records, n_resamples=50)[0]
    assert row.presence_rate.value == 0.0 and row.omission_rate.value == 1.0
    assert row.share_measurements == 0 and row.no_detection_measurements == 2
    assert math.isnan(row.mean_area_share.value) and math.isnan(row.mean_area_share.low)
    advantage = first_mention_advantage(records, n_resamples=50)[0]
    assert advantage.images_without_detection == 2 and math.isnan(advantage.area_share.value)
    json.dumps(compare_models(records, n_resamples=50).to_dict(), allow_nan=False)  # NaN becomes null


def test_objects_not_detected_count_as_area_zero_even_with_a_leftover_area():
    records = image_records(("cat", "dog"), 0, [0.375, 0.125], present=[True, False])
    first, second = by_position(records, n_resamples=10)
    assert second.mean_area.value == 0.0 and second.mean_area_share.value == 0.0
    assert first.mean_area_share.value == 1.0


def test_model_comparison_side_by_side():
    records = two_object_records("base") + two_object_records("long", first_area=0.25, second_area=0.25)
    comparison = compare_models(records, n_resamples=100)
    assert comparison.groups == ("base", "long")
    rows = {row.metric: row.values for row in comparison.rows}
    assert [v.value for v in rows["mean area share, position 1"]] == [0.75, 0.5]
    assert [v.value for v in rows["first-mention advantage, area share"]] == pytest.approx([0.5, 0.0])
    assert [v.value for v in rows["mean pair order effect, area share"]] == pytest.approx([0.5, 0.0])
    assert [v.value for v in rows["omission rate, position 2"]] == [0.0, 0.0]
    assert (
        comparison.first_mention[1]
        == first_mention_advantage(two_object_records("long", 0.25, 0.25), n_resamples=100)[0]
    )
    assert {row.model for row in comparison.positions} == {"base", "long"}

    by_template = compare_models(
        [dataclasses.replace(r, template="u") for r in records[:8]] + records[:8],
        group_by_template=True,
        n_resamples=10,
    )
    assert by_template.groups == ("base [u]", "base [t]")


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([], "empty"),
        ("not records", "sequence"),
        ([{"model": "m"}], "not a ProminenceRecord"),
        (
            image_records(("cat", "dog"), 0, [0.1, 0.1]) + image_records(("cat", "dog", "cow"), 1, [0.1] * 3),
            "mixes objects",
        ),
        (image_records(("cat", "dog"), 0, [0.1, 0.1])[:1], "one record per object"),
        (image_records(("cat", "dog"), 0, [0.1, 0.1]) * 2, "one record per object"),
        (image_records(("cat",), 0, [0.1]), "fewer than two"),
        (image_records(("cat", "cat"), 0, [0.1, 0.1]), "twice"),
        ([dataclasses.replace(r, position=1) for r in image_records(("cat", "dog"), 0, [0.1, 0.1])], "position"),
        (image_records(("cat", "dog"), 0, [1.5, 0.1]), r"\[0, 1\]"),
        (image_records(("cat", "dog"), 0, [math.nan, 0.1]), r"\[0, 1\]"),
        ([dataclasses.replace(r, box=(0, 0, 1)) for r in image_records(("cat", "dog"), 0, [0.1, 0.1])], "box"),
    ],
)
def test_bad_records_raise_clear_errors(records, message):
    for call in (validate_records, by_position, first_mention_advantage, pair_order_effects, compare_models):
        with pytest.raises(ProminenceDataError, match=message) as info:
            call(records)
        assert isinstance(info.value, DebiasDiffusionError) and isinstance(info.value, ValueError)


def test_bad_settings_raise_clear_errors():
    records = two_object_records()
    for kwargs in ({"n_resamples": -1}, {"confidence": 1.0}, {"seed": -2}):
        with pytest.raises(ProminenceDataError):
            first_mention_advantage(records, **kwargs)


# --- report --------------------------------------------------------------------------------------

SIZE = 64
COLOURS = {"cat": (200, 0, 0), "dog": (0, 0, 200)}
BOXES = {"cat": (4, 8, 36, 56), "dog": (40, 20, 60, 44)}  # (x0, y0, x1, y1) in a 64 x 64 image


def synthetic_run(tmp_path):
    """Images with a red cat and a blue dog rectangle at fixed places, and the records a detector would give.

    Seed 1 of ("dog", "cat") misses the dog; its file is absent for seed 0 of ("dog", "cat") in model "small".
    """
    run = tmp_path / "run"
    records = []
    for model in ("base", "small"):
        for seed in (1, 0):  # out of order on purpose: grid columns sort seeds
            for ordering in (("cat", "dog"), ("dog", "cat")):
                missed = ordering == ("dog", "cat") and seed == 1
                image = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
                draw = ImageDraw.Draw(image)
                for name in ordering:
                    if not (missed and name == "dog"):
                        draw.rectangle(BOXES[name], fill=COLOURS[name])
                relative = f"images/{model}/{'-'.join(ordering)}_{seed}.png"
                if not (model == "small" and ordering == ("dog", "cat") and seed == 0):
                    (run / relative).parent.mkdir(parents=True, exist_ok=True)
                    image.save(run / relative)
                present = [not (missed and name == "dog") for name in ordering]
                boxes = [BOXES[name] if ok else None for name, ok in zip(ordering, present, strict=True)]
                areas = [_box_area(box) if box else 0.0 for box in boxes]
                records += image_records(
                    ordering, seed, areas, model=model, present=present, boxes=boxes, image=relative
                )
    return run, records


def _box_area(box):
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0) / SIZE**2


def test_write_report(tmp_path):
    from matplotlib import _pylab_helpers

    from debias_diffusion.prominence.grids import GridGeometry, position_colour
    from debias_diffusion.prominence.measurement_files import (
        MEASUREMENT_COLUMNS,
        read_measurements_csv,
        read_measurements_json,
    )
    from debias_diffusion.prominence.report import write_report

    run, records = synthetic_run(tmp_path)
    out = tmp_path / "report"
    files = write_report(
        records,
        out,
        caveat="these are the project's own tiny models",
        images_root=run,
        cell_size=SIZE,
        n_resamples=100,
        plot_size=(480, 320),
        run_settings={"detector": "synthetic"},
    )
    assert all(path.is_file() for path in files.all())
    assert not list(out.rglob("*.tmp"))
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0  # no pyplot figures left behind

    # Measurements: one row per record, box as four columns, exact round trips.
    with open(files.measurements_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(records) == 16
    assert tuple(rows[0]) == MEASUREMENT_COLUMNS
    missed = next(row for row in rows if row["present"] == "false")
    assert [missed[name] for name in ("box_x0", "box_y0", "box_x1", "box_y1")] == ["", "", "", ""]
    assert read_measurements_csv(files.measurements_csv) == records
    assert read_measurements_json(files.measurements_json) == records

    metrics = json.loads(files.metrics_json.read_text())
    assert metrics["groups"] == ["base", "small"] and metrics["run_settings"] == {"detector": "synthetic"}

    summary = files.summary.read_text()
    assert "**Caveat:** these are the project's own tiny models" in summary
    for term, definition in DEFINITIONS:
        assert f"**{term}**: {definition}" in summary
    for heading in (
        "## Model comparison",
        "## By prompt position",
        "## First-mention advantage",
        "## Pair order effects",
        "## Omission",
    ):
        assert heading in summary
    assert "(plots/presence_by_position.png)" in summary and "(grids/" in summary

    # Plots: PNGs of the asked size.
    assert [p.name for p in files.plots] == ["presence_by_position.png", "area_share_by_position.png"]
    for plot in files.plots:
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.size == (480, 320)

    # Grids: one per model (set 0, template t); rows = orderings, columns = sorted seeds.
    assert sorted(p.name for p in files.grids) == ["set0_base_t.png", "set0_small_t.png"]
    line = 12 + 4
    geometry = GridGeometry(
        rows=2, columns=2, cell_size=SIZE, caption_height=3 * line + 4, title_height=2 * line, padding=8
    )
    assert geometry.size == (2 * (SIZE + 8) + 8, 2 * line + 2 * (SIZE + 3 * line + 4 + 8) + 8)
    with Image.open(out / "grids" / "set0_base_t.png") as grid:
        grid = grid.convert("RGB")
        assert grid.size == geometry.size

        def left_edge(row, column, name):
            x, y = geometry.cell_origin(row, column)
            x0, y0, _, y1 = BOXES[name]
            return grid.getpixel((x + x0 + 1, y + (y0 + y1) // 2))

        # Row 0 names the cat first, row 1 second: its box takes that position's colour.
        assert left_edge(0, 0, "cat") == position_colour(1)
        assert left_edge(1, 0, "cat") == position_colour(2)
        assert left_edge(0, 1, "dog") == position_colour(2)
        # Column 1 is seed 1, where ("dog", "cat") missed the dog: no box, the plain white background.
        assert left_edge(1, 1, "dog") == (255, 255, 255)
        assert left_edge(1, 0, "dog") == position_colour(1)
    with Image.open(out / "grids" / "set0_small_t.png") as grid:  # a missing image file is a grey cell
        x, y = geometry.cell_origin(1, 0)
        assert grid.convert("RGB").getpixel((x + SIZE - 2, y + SIZE - 2)) == (200, 200, 200)


def test_measurement_files_round_trip_numpy_values(tmp_path):
    from debias_diffusion.prominence.measurement_files import (
        read_measurements_csv,
        read_measurements_json,
        write_measurements_csv,
        write_measurements_json,
    )

    records = random_records(n_sets=1, seeds=range(2))  # numpy floats and bools, as a runner may pass them
    records[0] = dataclasses.replace(records[0], mask_area=np.float64(0.1 / 3), box=(np.float32(1.5), 2, 3, 4.25))
    assert isinstance(records[1].present, np.bool_)
    assert read_measurements_csv(write_measurements_csv(tmp_path / "m.csv", records)) == records
    assert read_measurements_json(write_measurements_json(tmp_path / "m.json", records)) == records
    assert "np." not in (tmp_path / "m.csv").read_text()


def test_grid_with_models_as_columns(tmp_path):
    from debias_diffusion.prominence.grids import image_grid, image_opener, write_image_grids

    run, records = synthetic_run(tmp_path)
    paths = write_image_grids(records, tmp_path / "grids", image_opener(run), rows="ordering", columns="model")
    assert sorted(p.name for p in paths) == ["set0_seed-0_t.png", "set0_seed-1_t.png"]  # one per seed
    with Image.open(paths[0]) as grid:
        assert grid.size == (2 * (256 + 8) + 8, 2 * 16 + 2 * (256 + 3 * 16 + 4 + 8) + 8)
    with pytest.raises(ProminenceDataError, match="one seed"):
        image_grid(records, image_opener(run), rows="ordering", columns="model")
    with pytest.raises(ProminenceDataError, match="two different fields"):
        image_grid(records, image_opener(run), rows="ordering", columns="object")


def test_report_with_bad_records_writes_nothing(tmp_path):
    from debias_diffusion.prominence.report import write_report

    with pytest.raises(ProminenceDataError):
        write_report([], tmp_path / "report")
    assert not (tmp_path / "report").exists()


def test_report_without_images_or_caveat(tmp_path):
    from debias_diffusion.prominence.report import NO_CAVEAT, write_report

    files = write_report(three_object_records(), tmp_path / "report", n_resamples=20)
    assert files.grids == ()
    summary = files.summary.read_text()
    assert f"**Caveat:** {NO_CAVEAT}" in summary and "no image root" in summary
    assert "| 1 | 4 | 0.750" in summary  # position 1: four measurements, presence .75
