"""evaluate_prominence: orderings and templates, generation cache and resume, colour measurement, CLI."""

from __future__ import annotations

import functools
import json
import re

import pytest
import torch
from PIL import Image, ImageDraw
from pipeline_builders import sd_components

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.cli import main
from debias_diffusion.errors import ProminenceDataError
from debias_diffusion.prominence.detectors import DEFAULT_PALETTE, ColourDetector
from debias_diffusion.prominence.prompts import get_template, orderings, read_object_sets
from debias_diffusion.prominence.runner import SamplingSettings, evaluate_prominence

pytestmark = pytest.mark.usefixtures("single_torch_thread")
SIDES = (24, 16, 8)  # the painter draws the k-th named object as a square of side SIDES[k-1] on 64 x 64
SETS = [["red cube", "blue cube", "green cube"]]  # plain lists are read like a file


class FirstMentionPainter:
    """A stand-in text-to-image pipeline with a known, total first-mention bias: object k of the prompt is
    drawn as a square of side SIDES[k-1]; the seed moves the squares. Counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.images = 0

    def __call__(self, prompt, generator, num_inference_steps, guidance_scale, width, height, **kwargs):
        self.calls += 1
        self.images += len(prompt)
        out = []
        for text, gen in zip(prompt, generator, strict=True):
            named = sorted((m.start(), c) for c in DEFAULT_PALETTE for m in re.finditer(rf"\b{c}\b", text))
            shift = int(torch.randint(0, 4, (1,), generator=gen))
            image = Image.new("RGB", (64, 64), (255, 255, 255))
            draw = ImageDraw.Draw(image)
            for k, (_, colour) in enumerate(named):
                x0, y0 = (2, 30, 50)[k] + shift, 2 + shift
                draw.rectangle((x0, y0, x0 + SIDES[k] - 1, y0 + SIDES[k] - 1), fill=DEFAULT_PALETTE[colour])
            out.append(image)
        return type("Output", (), {"images": out})()


def _run(tmp_path, pipelines, **kwargs):
    options = dict(detector=ColourDetector(), output_dir=tmp_path / "run", seeds=(0, 1), progress=False,
                   generation=SamplingSettings(steps=1), grid_object_sets=1)  # fmt: skip
    return evaluate_prominence(pipelines, SETS, **{**options, **kwargs})


def test_orderings_are_complete_or_a_balanced_seeded_sample():
    assert sorted(orderings(("a", "b", "c"))) == sorted(
        [("a", "b", "c"), ("a", "c", "b"), ("b", "a", "c"), ("b", "c", "a"), ("c", "a", "b"), ("c", "b", "a")]
    )
    sample = orderings(tuple("abcde"), max_orderings=8, seed=3)
    assert len(sample) == len(set(sample)) == 8
    for position in range(5):  # the first five are rotations: every object at every position once
        assert sorted(order[position] for order in sample[:5]) == list("abcde")
    assert sample == orderings(tuple("abcde"), max_orderings=8, seed=3)
    assert sample != orderings(tuple("abcde"), max_orderings=8, seed=4)
    with pytest.raises(ProminenceDataError, match="fewer than the 5 objects"):
        orderings(tuple("abcde"), max_orderings=4)


def test_templates_and_object_set_files(tmp_path):
    assert get_template("list").format(["orange cube", "cat"]) == "An orange cube and a cat"
    assert get_template("a photo of {objects}.").format(["cat", "dog"]) == "A photo of a cat and a dog."
    long = get_template("descriptive").format(["cat", "dog", "owl"])
    assert long.count(". ") == 2 and long.startswith("A cat") and long.index("a dog") < long.index("an owl")
    (tmp_path / "sets.yaml").write_text(
        "- [cat, dog]\n- [{name: cube, attributes: [red]}, {name: ball, attributes: blue}]\n"
    )
    assert [s.objects for s in read_object_sets(tmp_path / "sets.yaml")] == [("cat", "dog"), ("red cube", "blue ball")]
    for text, message in [("- [cat]\n", "at least 2"), ("- [cat, cat]\n", "twice"), ("{}\n", "non-empty list"),
                          ("- [cat, {colour: red}]\n", "object set 0")]:  # fmt: skip
        (tmp_path / "bad.yaml").write_text(text)
        with pytest.raises(ProminenceDataError, match=message):
            read_object_sets(tmp_path / "bad.yaml")
    with pytest.raises(ProminenceDataError, match="unknown template"):
        get_template("a photo")


def test_first_mention_bias_is_measured_with_known_areas(tmp_path):
    painter = FirstMentionPainter()
    run = _run(tmp_path, {"painter": painter})
    assert run.generated == 12 and painter.images == 12 and painter.calls == 6  # 6 orderings x 2 seeds, batched
    assert len(run.records) == 36 and all(r.present for r in run.records)
    for record in run.records:  # the detector recovers the drawn areas exactly (flat squares, no anti-aliasing)
        assert record.area == pytest.approx(SIDES[record.position - 1] ** 2 / 64**2)
        assert record.object == record.ordering[record.position - 1]
    metrics = json.loads((run.report.metrics_json).read_text())
    assert "painter" in json.dumps(metrics) and run.report.summary.is_file() and run.report.grids
    share = sum(r.area for r in run.records if r.position == 1) / sum(r.area for r in run.records)
    assert share == pytest.approx(24**2 / (24**2 + 16**2 + 8**2))


def test_an_interrupted_run_resumes_without_regenerating(tmp_path):
    first = FirstMentionPainter()
    _run(tmp_path, {"painter": first}, report=False)
    again = FirstMentionPainter()
    run = _run(tmp_path, {"painter": again})
    assert (run.generated, run.measured, again.calls) == (0, 0, 0)
    image = tmp_path / "run" / run.records[0].image
    image.unlink()  # as if the run had died before this image was written
    third = FirstMentionPainter()
    run = _run(tmp_path, {"painter": third})
    # its planned batch (both seeds of the prompt) is regenerated, only the lost image written; the same bytes
    # come back, so its stored measurement is reused
    assert (run.generated, third.images, run.measured) == (1, 2, 0)
    run = _run(tmp_path, {"painter": FirstMentionPainter()}, detector=ColourDetector(tolerance=50))
    assert (run.generated, run.measured) == (0, 12)  # another detector setting re-measures only
    run = _run(tmp_path, {"painter": FirstMentionPainter()}, generation=SamplingSettings(steps=2))
    assert run.generated == 12  # other generation settings are other images


def test_pipelines_load_one_at_a_time_and_only_when_needed(tmp_path):
    loads = []

    def loader(name):
        loads.append(name)
        return FirstMentionPainter()

    pipelines = {"a": functools.partial(loader, "a"), "b": functools.partial(loader, "b")}
    run = _run(tmp_path, pipelines, report=False)
    assert loads == ["a", "b"] and {r.model for r in run.records} == {"a", "b"}
    _run(tmp_path, pipelines, report=False)
    assert loads == ["a", "b"]  # everything cached: nothing loaded


def test_a_real_tiny_diffusers_pipeline_runs_through(tmp_path):
    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    pipe.set_progress_bar_config(disable=True)
    run = _run(tmp_path, {"tiny": pipe}, seeds=(0,), generation=SamplingSettings(steps=2, width=32, height=32))
    assert run.generated == 6 and len(run.records) == 18
    with Image.open(tmp_path / "run" / run.records[0].image) as image:
        assert image.size == (32, 32)
    sidecar = json.loads((tmp_path / "run" / run.records[0].image).with_suffix(".json").read_text())
    assert sidecar["prompt"].startswith(("A red cube", "A blue cube", "A green cube")) and sidecar["steps"] == 2


def test_bad_arguments_fail_before_any_work(tmp_path):
    for kwargs, message in [({"seeds": (0, 0)}, "distinct"), ({"templates": ("list", "list")}, "repeat"),
                            ({"templates": ("nope",)}, "unknown template")]:  # fmt: skip
        with pytest.raises(ProminenceDataError, match=message):
            _run(tmp_path, {"painter": FirstMentionPainter()}, **kwargs)
    with pytest.raises(ProminenceDataError, match="collide"):
        _run(tmp_path, {"a b": FirstMentionPainter(), "a-b": FirstMentionPainter()})
    assert not (tmp_path / "run" / "images").exists()


def test_cli_compares_saved_pipelines_with_the_colour_detector(tmp_path, capsys):
    DeBiasStableDiffusionPipeline(**sd_components(248)).save_pretrained(tmp_path / "pipe")
    (tmp_path / "sets.json").write_text(json.dumps([["red cube", "blue ball"]]))
    argv = ["evaluate-prominence", "--objects", str(tmp_path / "sets.json"), "--pipeline", f"tiny={tmp_path / 'pipe'}",
            "--detector", "colour", "--seeds", "0", "--steps", "1", "--size", "32x32", "--device", "cpu",
            "-o", str(tmp_path / "out"), "--caveat", "tiny random models"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 measurements (2 images generated" in out
    assert "tiny random models" in (tmp_path / "out" / "report" / "summary.md").read_text()
    assert main([*argv[:-2]]) == 0 and "0 images generated" in capsys.readouterr().out
    assert main(["evaluate-prominence", "--objects", str(tmp_path / "sets.json"), "--detector", "colour"]) == 2
    assert "at least one --encoder" in capsys.readouterr().err
    assert (
        main(["evaluate-prominence", "--objects", str(tmp_path / "x.yaml"), "-p", "a=b", "--detector", "colour"]) == 2
    )
    assert "does not exist" in capsys.readouterr().err
