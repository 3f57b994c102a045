"""Late-detail adherence: prompts at controlled token offsets, controls, curves, effective length, errors, CLI."""

from __future__ import annotations

import json
import re

import pytest
import torch
from PIL import Image, ImageDraw
from pipeline_builders import sd_components

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.cli import main
from debias_diffusion.errors import CheckpointError, ProminenceDataError
from debias_diffusion.late_detail import NEUTRAL_CONTEXT, LateDetailItem, build_prompts, context_pool
from debias_diffusion.late_detail.metrics import effective_length
from debias_diffusion.late_detail.prompts import mention_offset
from debias_diffusion.late_detail.runner import LateDetailCondition, evaluate_late_detail
from debias_diffusion.prominence.detectors import DEFAULT_PALETTE, ColourDetector
from debias_diffusion.prominence.runner import SamplingSettings
from debias_diffusion.shapes_world import COLOURS, SHAPES
from debias_diffusion.tokenization import build_clip_tokenizer, count_tokens

pytestmark = pytest.mark.usefixtures("single_torch_thread")
ITEMS = ["red circle", {"target": "green star", "anchor": "blue square"}]
OFFSETS = (12, 40, 75, 110, 145, 180, 215)
COCO_CLASSES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)


class WindowPainter:
    """A stand-in text-to-image pipeline that draws a named colour only when its mention starts within the
    first ``k`` tokens (offset <= k, start token = 0); the seed moves the squares."""

    def __init__(self, k: int, window: int = 248) -> None:
        self.k, self.tokenizer, self.images = k, build_clip_tokenizer(context_length=window), 0

    def __call__(self, prompt, generator, num_inference_steps, guidance_scale, width, height, **kwargs):
        out = []
        for text, gen in zip(prompt, generator, strict=True):
            self.images += 1
            shift = int(gen.initial_seed() % 4)
            image = Image.new("RGB", (64, 64), (255, 255, 255))
            draw = ImageDraw.Draw(image)
            for slot, match in enumerate(re.finditer(rf"\b({'|'.join(DEFAULT_PALETTE)})\b", text)):
                if mention_offset(text, match.start(), self.tokenizer) <= self.k:
                    x0 = 4 + 30 * (slot % 2) + shift
                    draw.rectangle((x0, 20 + shift, x0 + 20, 40 + shift), fill=DEFAULT_PALETTE[match.group(1)])
            out.append(image)
        return type("Output", (), {"images": out})()


def _run(tmp_path, conditions, **kwargs):
    options = dict(detector=ColourDetector(), output_dir=tmp_path / "run", offsets=OFFSETS, seeds=(0, 1),
                   tolerance=0, progress=False, generation=SamplingSettings(steps=1))  # fmt: skip
    return evaluate_late_detail(conditions, ITEMS, **{**options, **kwargs})


def test_prompts_keep_length_and_context_and_move_only_the_target():
    tokenizer = build_clip_tokenizer()
    items = [LateDetailItem("red circle"), LateDetailItem("green star", anchor="blue square")]
    prompts = build_prompts(items, OFFSETS, context_pool(["red circle", "green star", "blue square"]), tokenizer,
                            tolerance=0)  # fmt: skip
    assert len(prompts) == 2 * len(OFFSETS) * 2
    for item in (0, 1):
        mine = [p for p in prompts if p.item == item]
        assert {p.total_tokens for p in mine} == {mine[0].total_tokens}  # same length at every offset
        mentions = [p for p in mine if p.mentioned]
        assert [p.planned_offset for p in mentions] == list(OFFSETS)
        for p in mentions:  # the measured offset is the requested one, in a fresh tokenizer count
            start = p.prompt.index(p.target_sentence) + p.target_sentence.index(p.target)
            assert mention_offset(p.prompt, start, tokenizer) == p.offset
            assert count_tokens(tokenizer, p.prompt[: start - 1]) == p.offset - 1
        contexts = {
            p.prompt.replace(p.target_sentence + " ", "").replace(" " + p.target_sentence, "") for p in mentions
        }
        assert len(contexts) == 1  # the same context sentences in the same order: only the position moves
        for p in (p for p in mine if not p.mentioned):
            assert "green star" not in p.prompt and "red circle" not in p.prompt
    assert prompts[-1].prompt.startswith("The picture shows a blue square.")


def test_builtin_pool_names_no_coco_or_shapes_world_object():
    for name in (*COCO_CLASSES, *COLOURS, *SHAPES):
        context_pool([name])  # raises if a built-in sentence named it
    assert len(NEUTRAL_CONTEXT) == len(set(NEUTRAL_CONTEXT)) >= 50


def test_effective_length_definition():
    assert effective_length([5, 40, 75, 110], [0.8, 0.6, 0.41, 0.39]) == 75  # stays >= 0.4 until 75 ...
    assert effective_length([5, 40, 75, 110], [0.8, 0.3, 0.9, 0.9]) == 5  # ... and must stay: 40 breaks it
    assert effective_length([5, 40], [0.0, 0.5]) is None
    assert effective_length([5, 40], [0.5, 0.5]) == 40


@pytest.mark.parametrize("k", [40, 110, 180])
def test_a_pipeline_that_reads_k_tokens_has_effective_length_k(tmp_path, k):
    run = _run(tmp_path, {"reads-k": WindowPainter(k)})
    (curve,) = run.curves
    assert curve.effective_length == k
    assert [e.value for e in curve.presence] == [1.0 if o <= k else 0.0 for o in OFFSETS]
    assert all(e.value == 0.0 for e in curve.baseline)
    assert all(c == 1.0 for c in curve.conditioned) and curve.window == 248
    assert list(curve.mention_offsets) == list(OFFSETS)
    anchors = [r.anchor_present for r in run.records if r.item == 1]
    assert all(anchors)


def test_truncate_marks_mentions_past_the_window_as_not_read_and_the_run_resumes(tmp_path):
    conditions = {"clip-77": WindowPainter(74, window=77),  # reads tokens 1..75: a mention at 75 is cut
                  "clip-77 chunk": LateDetailCondition(WindowPainter(248, window=77), "chunk")}  # fmt: skip
    run = _run(tmp_path, conditions)
    truncate, chunk = run.curves
    assert truncate.window == chunk.window == 77 and (truncate.policy, chunk.policy) == ("truncate", "chunk")
    assert list(truncate.conditioned) == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # offset 75's sentence ends past 75
    assert list(chunk.conditioned) == [1.0] * len(OFFSETS)
    # past the window, presence equals the no-mention baseline, inside the interval of the difference
    for i in range(2, len(OFFSETS)):
        assert truncate.presence[i].value == truncate.baseline[i].value
        assert truncate.difference[i].low <= 0 <= truncate.difference[i].high
    assert run.generated == 2 * 2 * len(OFFSETS) * 2 * 2
    summary = json.loads((tmp_path / "run" / "report" / "curves.json").read_text())["curves"]
    assert summary["clip-77"]["effective_length"] == 40 and summary["clip-77 chunk"]["effective_length"] == 215
    assert (tmp_path / "run" / "report" / "curves.png").stat().st_size > 0
    assert "| clip-77 | 77 | truncate | 40 |" in (tmp_path / "run" / "report" / "summary.md").read_text()
    again = _run(tmp_path, {"clip-77": WindowPainter(74, window=77),
                            "clip-77 chunk": LateDetailCondition(WindowPainter(248, window=77), "chunk")})  # fmt: skip
    assert again.generated == 0 and again.measured == 0 and len(again.records) == len(run.records)


def test_a_real_tiny_diffusers_pipeline_runs_through(tmp_path):
    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    pipe.set_progress_bar_config(disable=True)
    run = _run(
        tmp_path,
        {"tiny": pipe},
        offsets=(12, 200),
        seeds=(0,),
        generation=SamplingSettings(steps=1, width=32, height=32),
    )
    assert run.generated == 2 * 2 * 2 and len(run.records) == 8
    with Image.open(tmp_path / "run" / run.records[0].image) as image:
        assert image.size == (32, 32)


def test_images_are_keyed_by_the_pipelines_content_and_resume_exactly(tmp_path):
    painter = WindowPainter(40)
    painter.identity = "painter reading 40 tokens"
    settings = dict(offsets=(12, 110), seeds=(0, 1, 2), generation=SamplingSettings(steps=1, images_per_call=2))
    first = _run(tmp_path, {"p": painter}, **settings)
    assert first.generated == 2 * 2 * 2 * 3  # items x (mention, control) x offsets x seeds, controls included
    lost = tmp_path / "run" / first.records[1].image
    kept_bytes = lost.read_bytes()
    lost.unlink()
    scratch = tmp_path / "run" / "images" / "p" / ".left-by-a-killed-writer.png.tmp"
    scratch.write_bytes(b"half an image")
    again = _run(tmp_path, {"p": painter}, **settings)
    assert again.generated == 1 and again.measured == 0  # the same bytes: its stored measurements still apply
    assert lost.read_bytes() == kept_bytes and not scratch.exists()
    assert [r.present for r in again.records] == [r.present for r in first.records]
    painter.identity = "another painter under the same name"
    other = _run(tmp_path, {"p": painter}, **settings)
    assert other.generated == first.generated and other.measured == first.generated
    assert {r.image for r in other.records}.isdisjoint(r.image for r in first.records)


def test_a_pipeline_with_nan_weights_is_refused_before_any_image(tmp_path):
    painter = WindowPainter(40)
    broken = torch.nn.Linear(2, 2)
    with torch.no_grad():
        broken.weight[0, 0] = float("nan")
    painter.components = {"unet": broken}
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        _run(tmp_path, {"p": painter})
    assert painter.images == 0 and not list((tmp_path / "run").glob("images/**/*.png"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context": ["The glow is red and warm."], "builtin_context": True}, "names the object 'red circle'"),
        ({"context": ["Soft glow.", "Even tone."], "builtin_context": False}, "cannot fill"),
        ({"offsets": (8, 40)}, "earliest offset is 12"),
        ({"offsets": (40, 12)}, "strictly increasing"),
        ({"seeds": (0, 0)}, "distinct"),
    ],
)
def test_bad_inputs_fail_before_any_image(tmp_path, kwargs, message):
    with pytest.raises(ProminenceDataError, match=message):
        _run(tmp_path, {"reads-k": WindowPainter(40)}, **kwargs)
    assert not (tmp_path / "run" / "images").exists()


def test_an_anchor_equal_to_the_target_is_refused(tmp_path):
    with pytest.raises(ProminenceDataError, match="anchor equals the target"):
        evaluate_late_detail({"a": WindowPainter(40)}, [{"target": "red circle", "anchor": "Red  circle"}],
                             detector=ColourDetector(), output_dir=tmp_path / "run")  # fmt: skip


def test_cli_runs_a_saved_pipeline_and_reports_bad_input(tmp_path, capsys):
    DeBiasStableDiffusionPipeline(**sd_components(248)).save_pretrained(tmp_path / "pipe")
    (tmp_path / "items.yaml").write_text("- red circle\n- {target: green star, anchor: blue square}\n")
    argv = ["late-detail", "--items", str(tmp_path / "items.yaml"), "--pipeline", f"tiny={tmp_path / 'pipe'}",
            "--chunk", "tiny", "--detector", "colour", "--seeds", "0", "--steps", "1", "--size", "32x32",
            "--offsets", "12", "100", "--device", "cpu", "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "16 images generated" in out and "effective length" in out
    curves = json.loads((tmp_path / "out" / "report" / "curves.json").read_text())["curves"]
    assert set(curves) == {"tiny", "tiny (chunk)"} and curves["tiny"]["offsets"] == [12, 100]
    assert not (tmp_path / "out" / "report" / "attention.md").exists()
    assert main([*argv, "--attention"]) == 0  # images resumed; the attention tables added
    assert "0 images generated" in capsys.readouterr().out
    table = (tmp_path / "out" / "report" / "attention.md").read_text()
    assert "| tiny | 100 | 2 |" in table and "| tiny (chunk) | 100 | 2 |" in table
    bad = tmp_path / "context.txt"
    bad.write_text("# one sentence a line\nA star shines.\n")
    assert main([*argv, "--context", str(bad)]) == 2
    assert "names the object 'green star'" in capsys.readouterr().err
    items = ["late-detail", "--items", str(tmp_path / "items.yaml"), "--detector", "colour"]
    assert main([*items, "-p", f"tiny={tmp_path / 'pipe'}", "--chunk", "other"]) == 2
    assert "--chunk other: no --encoder or --pipeline is named 'other'" in capsys.readouterr().err
    assert main(items) == 2 and "at least one --encoder" in capsys.readouterr().err
