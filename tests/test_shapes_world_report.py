"""The world demo's report (debias_diffusion.shapes_world.report) and its runs' inputs, from small inputs."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from shapes_world_builders import records_for, scene

from debias_diffusion.errors import UsageError
from debias_diffusion.late_detail.metrics import LateDetailCurve
from debias_diffusion.prominence.measurement import ProminenceRecord
from debias_diffusion.prominence.metrics import Estimate, compare_models
from debias_diffusion.prominence.runner import ProminenceRun
from debias_diffusion.shapes_world import render_scene
from debias_diffusion.shapes_world.report import (
    drift_table,
    position_table,
    quality_table,
    world_report,
    world_summary,
    write_world_report,
)

DRIFT = {
    "Long-CLIP recipe": {"mean_cosine_first_77": 0.70061, "other": 1.0},
    "DeBias recipe": {"mean_cosine_first_77": 0.6721},
}
QUALITY = {
    "M": {"2-object all detected": 0.75, "2-object images": 4, "3-object all detected": 0.125, "3-object images": 8,
          "colour precision": 0.9, "images with an extra colour": 0.0},
    "M / list": {"2-object all detected": 1.0, "2-object images": 2, "colour precision": 0.5,
                 "images with an extra colour": 1.0},
}  # fmt: skip


def cat_dog_records() -> list[ProminenceRecord]:
    """cat/dog in both orders, two seeds: the first-named covers 0.3, the second 0.1 (shares 0.75 / 0.25)."""
    records = []
    for seed in (0, 1):
        for ordering in (["cat", "dog"], ["dog", "cat"]):
            for record in records_for(f"{'-'.join(ordering)}_{seed}.png", "m", "t", 0, ordering, [True, True], seed):
                area = 0.3 if record.position == 1 else 0.1
                records.append(ProminenceRecord(**{**record.__dict__, "box_area": area}))
    return records


def test_drift_and_quality_tables():
    assert drift_table(DRIFT) == [
        "| encoder | mean cosine |", "| --- | ---: |", "| Long-CLIP recipe | 0.7006 |", "| DeBias recipe | 0.6721 |",
    ]  # fmt: skip
    lines = quality_table(QUALITY)
    assert lines[2] == "| M | 75.0% | 12.5% | 90.0% | 0.0% |"
    assert lines[3] == "| M / list | 100.0% | nan% | 50.0% | 100.0% |"  # no 3-object image in that group
    assert len(lines) == 4


def test_position_table_from_hand_built_records():
    lines = position_table(compare_models(cat_dog_records()))
    assert lines[0] == (
        "| model | area share @1 | area share @2 | presence @1 | presence @2 | "
        "first-mention advantage (area share, 95% CI) |"
    )
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert lines[2] == "| m | 0.750 | 0.250 | 100% | 100% | +0.500 [+0.500, +0.500] |"


def late_curve() -> LateDetailCurve:
    one = (Estimate(0.5, 0.25, 0.75),)
    return LateDetailCurve("CLIP-77", 77, "truncate", (110,), (110.0,), (4,), (0.0,), one, one,
                           (Estimate(0.0, -0.5, 0.5),), one, one, None, 4)  # fmt: skip


def test_world_summary_keys_and_values():
    comparison = compare_models(cat_dog_records())
    summary = world_summary(retrieval_results={"r": 1}, drift=DRIFT, quality=QUALITY, comparison=comparison,
                            seconds=12.345)  # fmt: skip
    assert list(summary) == ["retrieval", "drift_mean_cosine_first_77", "generation_quality", "prominence", "seconds"]
    assert summary["drift_mean_cosine_first_77"] == {"Long-CLIP recipe": 0.70061, "DeBias recipe": 0.6721}
    assert summary["seconds"] == 12.3 and summary["retrieval"] == {"r": 1} and summary["generation_quality"] is QUALITY
    assert summary["prominence"] == comparison.to_dict()
    late = world_summary(retrieval_results=[], drift={}, quality={}, comparison=comparison, seconds=1,
                         late_curves=[late_curve()])  # fmt: skip
    assert list(late)[-2:] == ["late_detail", "seconds"]
    assert late["late_detail"]["CLIP-77"]["window"] == 77 and late["late_detail"]["CLIP-77"]["difference"] == [0.0]


def test_world_report_sections():
    comparison = compare_models(cat_dog_records())
    text = world_report(retrieval_markdown="RETRIEVAL TABLE", drift=DRIFT, quality=QUALITY, comparison=comparison,
                        prominence_summary="prominence/report/summary.md", seconds=245.4)  # fmt: skip
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert [h.split(".")[0] for h in headings] == ["## 1", "## 2", "## 3", "## 4"]
    assert "RETRIEVAL TABLE" in text and "| Long-CLIP recipe | 0.7006 |" in text
    assert "Target: every object detected in at least 70% of 2-object images." in text
    assert "| m | 0.750 | 0.250 | 100% | 100% | +0.500 [+0.500, +0.500] |" in text
    assert "[prominence/report/summary.md](prominence/report/summary.md)" in text
    assert text.endswith("\n\nTotal time: 245 s.\n")
    late = world_report(retrieval_markdown="", drift={}, quality={}, comparison=comparison, prominence_summary="p.md",
                        seconds=1, late_curves=[late_curve()], late_summary="late_detail/report/summary.md")  # fmt: skip
    assert "## 5. Late details" in late and "### CLIP-77 (window 77, truncate)" in late
    assert "[late_detail/report/summary.md](late_detail/report/summary.md)" in late


def test_write_world_report_measures_and_writes_both_files(tmp_path):
    prominence = tmp_path / "out" / "prominence"
    (prominence / "report").mkdir(parents=True)
    images = {"a.png": scene(("red", "square"), ("blue", "circle")), "b.png": scene(("red", "square"))}
    for name, world_scene in images.items():
        render_scene(world_scene, size=64).image.save(prominence / name)
    records = [*records_for("a.png", "M", "list", 0, ["red square", "blue circle"], [True, True]),
               *records_for("b.png", "M", "list", 0, ["blue circle", "red square"], [False, True])]  # fmt: skip
    report = SimpleNamespace(summary=prominence / "report" / "summary.md")
    run = ProminenceRun(records, prominence, generated=2, measured=2, report=report)
    files = write_world_report(tmp_path / "out", retrieval_results={"R@1": 50.0}, retrieval_markdown="| table |",
                               drift=DRIFT, prominence=run, started=0.0)  # fmt: skip
    summary = json.loads(files.summary_json.read_text(encoding="utf-8"))
    assert sorted(summary) == ["drift_mean_cosine_first_77", "generation_quality", "prominence", "retrieval", "seconds"]
    quality = summary["generation_quality"]["M"]
    assert quality["2-object all detected"] == 0.5 and quality["2-object images"] == 2
    assert quality["colour precision"] == 1.0 and quality["images with an extra colour"] == 0.0
    assert summary["seconds"] == files.seconds > 0
    text = files.report_md.read_text(encoding="utf-8")
    assert "| M | 50.0% | nan% | 100.0% | 0.0% |" in text
    assert "[prominence/report/summary.md](prominence/report/summary.md)" in text


# --- the runs' inputs -----------------------------------------------------------------------------


def test_world_object_sets_and_items_are_unseen_distinct_colour_scenes():
    from debias_diffusion.shapes_world import SceneConfig, sample_scene
    from debias_diffusion.shapes_world.world_late_detail import world_items
    from debias_diffusion.shapes_world.world_models import EVAL_SEED
    from debias_diffusion.shapes_world.world_prominence import world_object_sets

    sets = world_object_sets(5, 3)
    assert len(sets) == 5 and all(len(objects) == 3 for objects in sets)
    assert all(len({name.split()[0] for name in objects}) == 3 for objects in sets)
    assert sets[0] == [
        o.phrase for o in sample_scene(EVAL_SEED + 1, 0, SceneConfig(min_objects=3, max_objects=3)).objects
    ]
    assert world_object_sets(5, 3) == sets
    items = world_items(4)
    assert len(items) == 4 and all(set(item) == {"anchor", "target"} for item in items)
    assert all(item["anchor"].split()[0] != item["target"].split()[0] for item in items)
    first = sample_scene(EVAL_SEED + 2, 0, SceneConfig(min_objects=2, max_objects=2)).objects
    assert items[0] == {"anchor": first[0].phrase, "target": first[1].phrase}


def test_late_detail_conditions_and_unknown_condition(tmp_path):
    from debias_diffusion.shapes_world.world_late_detail import (
        DEMO_LATE_DETAIL,
        WorldLateDetailSettings,
        late_detail_conditions,
        run_world_late_detail,
    )

    encoders = {"CLIP-77": tmp_path / "clip-77", "DeBias recipe": tmp_path / "debias-recipe"}
    conditions = late_detail_conditions(tmp_path, encoders)
    assert list(conditions) == ["CLIP-77", "DeBias recipe", "CLIP-77 (chunk)"]
    assert [c.long_prompt for c in conditions.values()] == ["truncate", "truncate", "chunk"]
    assert conditions["CLIP-77 (chunk)"].pipeline is conditions["CLIP-77"].pipeline
    assert conditions["DeBias recipe"].pipeline.args == (tmp_path / "pipeline", tmp_path / "debias-recipe")
    assert DEMO_LATE_DETAIL.offsets == (12, 110) and "CLIP-77 (chunk)" in DEMO_LATE_DETAIL.conditions
    with pytest.raises(UsageError, match=r"unknown late-detail condition\(s\) \['Long-CLIP'\]"):
        run_world_late_detail(tmp_path / "late", tmp_path, encoders, WorldLateDetailSettings(conditions=("Long-CLIP",)))
    assert not (tmp_path / "late").exists()


def test_the_world_context_pool_names_no_object_and_uses_only_the_worlds_caption_words(tmp_path):
    import re

    from debias_diffusion.late_detail import context_pool
    from debias_diffusion.shapes_world import COLOURS, SHAPES, export_dataset
    from debias_diffusion.shapes_world.world_late_detail import WORLD_CONTEXT, WorldLateDetailSettings

    sentences = WORLD_CONTEXT
    objects = [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]
    assert context_pool(objects, sentences, builtin=False) == sentences and len(set(sentences)) >= 25
    assert WorldLateDetailSettings().context == WORLD_CONTEXT and not WorldLateDetailSettings().builtin_context
    export_dataset(tmp_path / "data", 200, size=16, seed=0, progress=False)
    captions = (tmp_path / "data" / "captions.jsonl").read_text().lower()
    known = set(re.findall(r"[a-z]+", captions))
    unknown = {word for sentence in sentences for word in re.findall(r"[a-z]+", sentence.lower())} - known
    assert not unknown, unknown


@pytest.mark.usefixtures("single_torch_thread")
def test_mention_states_separates_context_from_position_on_the_shipped_encoders(tmp_path, monkeypatch, example_script):
    script = example_script("mention_states")
    monkeypatch.setattr("sys.argv", ["mention_states.py", "-o", str(tmp_path / "states.json"), "--items", "3"])
    script.main()
    data = json.loads((tmp_path / "states.json").read_text())
    results = data["results"]
    assert set(results) == {"CLIP-77", "Long-CLIP recipe", "DeBias recipe"} and len(data["items"]) == 3
    assert results["CLIP-77"]["repeated anchor, offset ~110"]["similarity"] is None  # past its window: not measured
    for row in results.values():
        assert all(-1 <= c["similarity"] <= 1 and c["items"] == 3 for c in row.values() if c["similarity"] is not None)
        assert row["neutral, offset ~40"]["mean_offset"] > 30 and row["neutral, same offset"]["mean_offset"] < 20
        # the finding the docs report: neutral context words move a mention's states more than its position does
        assert row["repeated anchor, offset ~40"]["similarity"] > row["neutral, offset ~40"]["similarity"] + 0.1
