"""evaluate_prominence robustness: content identities, exact resume after kill -9, the output lock, scratch
cleanup, validation before the first image, and objects cut from the prompt."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pipeline_builders import sd_components
from prominence_resume_setup import run as resume_setup_run
from test_prominence_runner import FirstMentionPainter, _run

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.cli import main
from debias_diffusion.errors import DetectorError, ModelNotFoundError, OutputLockedError, ProminenceDataError
from debias_diffusion.output_lock import locked_output
from debias_diffusion.prominence.detectors import ColourDetector, Owlv2Detector
from debias_diffusion.prominence.identity import FileHashCache, path_identity, source_identity
from debias_diffusion.prominence.image_cache import read_valid_sidecar
from debias_diffusion.prominence.jobs import ImageJob
from debias_diffusion.prominence.mentions import conditioned_objects, mention_ends
from debias_diffusion.prominence.runner import SamplingSettings, evaluate_prominence
from debias_diffusion.prominence.store import ImageStore
from debias_diffusion.tokenization import build_clip_tokenizer

pytestmark = pytest.mark.usefixtures("single_torch_thread")
KILLED_RUN = Path(__file__).parent / "prominence_killed_run.py"
SCRATCH = ("*.tmp", "*.partial-*", "*.old-*")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _scratch(folder: Path) -> list[Path]:
    return [path for pattern in SCRATCH for path in folder.rglob(pattern)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference") / "run"
    run = resume_setup_run(folder)
    assert run.generated == 8 and run.measured == 8
    return _files(folder)


@pytest.mark.parametrize(
    "kill",
    [
        (r"/images/tiny/[0-9a-f]+\.png$", 4, "before"),  # 3 of the first call's 4 images written, the 4th half
        (r"/images/tiny/[0-9a-f]+\.json$", 6, "after"),  # a sidecar written, its image not yet
        (r"/detections/.+/tiny/[0-9a-f]+\.json$", 2, "before"),  # half-way through measuring
        (r"/measurements\.json$", 1, "before"),  # while writing the report
    ],
    ids=["mid-batch", "sidecar-without-image", "mid-measurement", "mid-report"],
)
def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path, uninterrupted, kill):
    folder = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(KILLED_RUN), str(folder), kill[0], str(kill[1]), kill[2]],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert _files(folder) != uninterrupted  # it really stopped part-way
    if kill[2] == "before":
        assert _scratch(folder)  # the write it died in left its temporary file / folder behind
    resume_setup_run(folder)
    assert not _scratch(folder)
    assert _files(folder) == uninterrupted  # bit-identical images, sidecars, measurements and report
    again = resume_setup_run(folder)
    assert (again.generated, again.measured) == (0, 0)


def test_a_changed_pipeline_folder_under_the_same_name_is_regenerated(tmp_path, capsys):
    """Issue 16 item 1: the same --pipeline name and folder, other weights: never the old images' numbers."""
    DeBiasStableDiffusionPipeline(**sd_components(248)).save_pretrained(tmp_path / "pipe")
    (tmp_path / "sets.json").write_text(json.dumps([["red cube", "blue ball"]]))
    argv = ["evaluate-prominence", "--objects", str(tmp_path / "sets.json"), "--pipeline", f"tiny={tmp_path / 'pipe'}",
            "--detector", "colour", "--seeds", "0", "--steps", "1", "--size", "32x32", "--device", "cpu",
            "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0 and "2 images generated" in capsys.readouterr().out
    first = json.loads((tmp_path / "out" / "report" / "measurements.json").read_text())
    components = sd_components(248)
    with torch.no_grad():
        components["unet"].conv_out.bias.add_(0.5)  # another model, saved over the first one
    DeBiasStableDiffusionPipeline(**components).save_pretrained(tmp_path / "pipe")
    assert main(argv) == 0 and "2 images generated" in capsys.readouterr().out
    second = json.loads((tmp_path / "out" / "report" / "measurements.json").read_text())
    assert {row["image"] for row in first}.isdisjoint(row["image"] for row in second)
    assert main(argv) == 0 and "0 images generated" in capsys.readouterr().out  # unchanged: all cached


def _load_from(folder: str, scale: int = 1):
    raise AssertionError("identities never call the loader")


def test_identities_follow_content_not_names(tmp_path):
    hashes = FileHashCache(tmp_path / "hashes.json")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"one")
    (tmp_path / "model" / ".cache").mkdir()
    (tmp_path / "model" / ".cache" / "meta").write_text("ignored")
    before = path_identity(tmp_path / "model", hashes)
    (tmp_path / "model" / ".cache" / "meta").write_text("still ignored")
    assert path_identity(tmp_path / "model", hashes) == before
    (tmp_path / "model" / "weights.bin").write_bytes(b"two")  # same size: the mtime tells the cache to re-hash
    assert path_identity(tmp_path / "model", hashes) != before
    hashes.save()
    assert len(json.loads((tmp_path / "hashes.json").read_text())) == 1

    loader = functools.partial(_load_from, str(tmp_path / "model"))
    by_loader = source_identity(loader, hashes, is_loader=True)
    assert source_identity(functools.partial(_load_from, folder=str(tmp_path / "model"), scale=1), hashes,
                           is_loader=True) == by_loader  # defaults filled in: the same call  # fmt: skip
    (tmp_path / "model" / "weights.bin").write_bytes(b"three")
    assert source_identity(loader, hashes, is_loader=True) != by_loader  # the folder's bytes changed

    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    identity = source_identity(pipe, hashes, is_loader=False)
    assert source_identity(DeBiasStableDiffusionPipeline(**sd_components(248)), hashes, is_loader=False) == identity
    pipe.scheduler.register_to_config(eta=0.5)  # a scheduler setting changes what is generated
    assert source_identity(pipe, hashes, is_loader=False) != identity
    with torch.no_grad():
        pipe.unet.conv_out.bias[0] += 1e-3
    changed = source_identity(pipe, hashes, is_loader=False)
    assert changed not in (identity, source_identity(DeBiasStableDiffusionPipeline(**sd_components(248)), hashes,
                                                     is_loader=False))  # fmt: skip


def test_an_in_memory_pipeline_with_changed_weights_is_regenerated(tmp_path):
    pipe = DeBiasStableDiffusionPipeline(**sd_components(248))
    pipe.set_progress_bar_config(disable=True)
    options = dict(seeds=(0,), generation=SamplingSettings(steps=1, width=32, height=32), report=False)
    assert _run(tmp_path, {"tiny": pipe}, **options).generated == 6
    assert _run(tmp_path, {"tiny": pipe}, **options).generated == 0
    with torch.no_grad():
        pipe.unet.conv_out.bias.add_(0.5)
    assert _run(tmp_path, {"tiny": pipe}, **options).generated == 6


def test_a_damaged_image_or_sidecar_is_regenerated_not_served(tmp_path):
    run = _run(tmp_path, {"painter": FirstMentionPainter()}, report=False)
    image = tmp_path / "run" / run.records[0].image
    original = image.read_bytes()
    image.write_bytes(original[:-10])  # truncated on disk
    painter = FirstMentionPainter()
    assert _run(tmp_path, {"painter": painter}, report=False).generated == 1 and image.read_bytes() == original
    sidecar = image.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "key": "another"}))
    assert _run(tmp_path, {"painter": FirstMentionPainter()}, report=False).generated == 1
    detection = next((tmp_path / "run" / "detections").glob(f"*/painter/{image.stem}.json"))
    stored = json.loads(detection.read_text())
    detection.write_text(json.dumps({**stored, "image_sha256": "0" * 64}))  # measured some other image
    run = _run(tmp_path, {"painter": FirstMentionPainter()}, report=False)
    assert (run.generated, run.measured) == (0, 1) and json.loads(detection.read_text()) == stored
    detection.write_text("[")  # damaged
    assert _run(tmp_path, {"painter": FirstMentionPainter()}, report=False).measured == 1


def test_a_second_run_on_a_locked_folder_is_refused(tmp_path):
    with locked_output(tmp_path / "run"), pytest.raises(OutputLockedError, match="in use by pid"):
        _run(tmp_path, {"painter": FirstMentionPainter()})
    assert not (tmp_path / "run" / "images").exists()
    assert _run(tmp_path, {"painter": FirstMentionPainter()}, report=False).generated == 12  # released


def test_scratch_of_killed_runs_is_removed(tmp_path):
    _run(tmp_path, {"painter": FirstMentionPainter()})
    folder = tmp_path / "run"
    left = [folder / "images" / "painter" / ".abc.png.x1y2.tmp", folder / "report" / ".summary.md.zz.tmp"]
    for path in left:
        path.write_bytes(b"half")
    (folder / ".report.partial-q1w2" / "plots").mkdir(parents=True)
    (folder / ".report.old-e3r4").mkdir()
    (folder / ".user-notes.tmp").write_text("not the run's")  # outside what the run writes: kept
    _run(tmp_path, {"painter": FirstMentionPainter()})
    assert _scratch(folder) == [folder / ".user-notes.tmp"]


def test_detector_problems_fail_before_any_image_is_generated(tmp_path):
    painter = FirstMentionPainter()
    with pytest.raises(DetectorError, match="both red"):
        evaluate_prominence({"painter": painter}, [["red cube", "red ball"]], detector=ColourDetector(),
                            output_dir=tmp_path / "run", progress=False)  # fmt: skip
    with pytest.raises(ModelNotFoundError):  # not downloaded, and the tests are offline
        _run(tmp_path, {"painter": painter}, detector=Owlv2Detector(model="no-such-owner/no-such-owlv2"))
    for generation, message in [(SamplingSettings(width=30), "multiple of 8"), (SamplingSettings(steps=0), ">= 1"),
                                (SamplingSettings(guidance_scale=float("nan")), "finite"),
                                (SamplingSettings(extra={"generator": None}), "sets")]:  # fmt: skip
        with pytest.raises(ProminenceDataError, match=message):
            _run(tmp_path, {"painter": painter}, generation=generation)
    with pytest.raises(ProminenceDataError, match="does not name"):
        _run(tmp_path, {"painter": painter}, templates=({"name": "plural", "item": "{object}s"},))
    assert painter.calls == 0 and not (tmp_path / "run" / "images").exists()


LONG_ITEM = (  # 33 tokens with "a red cube": two fit in 75, three do not
    "{object} rests on an old oak table by a tall window in the soft golden light of a late summer afternoon, "
    "beside a small bowl of fresh ripe pears"
)


def _tokenized_painter(policy: str | None) -> FirstMentionPainter:
    painter = FirstMentionPainter()
    painter.tokenizer = build_clip_tokenizer(context_length=77)
    if policy is not None:
        painter.long_prompt_policy = lambda call_policy=None: call_policy or policy
    return painter


def test_which_mentions_survive_the_long_prompt_policy():
    ordering = ("red cube", "blue cube", "green cube")
    prompt = ". ".join(LONG_ITEM.format(object=f"a {name}") for name in ordering) + "."
    assert mention_ends("A cat and a scattered cat", ["cat", "cat"]) == [5, 25]
    stock = conditioned_objects(_tokenized_painter(None), prompt, ordering, None)
    sentences = conditioned_objects(_tokenized_painter("truncate"), prompt, ordering, None)
    assert sentences == [True, True, False]  # the whole third sentence is dropped
    assert stock == [True, True, True]  # stock pipelines cut tokens: the third mention itself still fits
    object_last = ". ".join(f"In the soft golden light of a late summer afternoon by a tall window there is a {name}"
                            " on an old oak table beside a bowl of pears" for name in ordering)  # fmt: skip
    assert conditioned_objects(_tokenized_painter(None), object_last, ordering, None) == [True, True, False]
    assert conditioned_objects(_tokenized_painter("truncate"), prompt, ordering, "chunk") == [True, True, True]
    assert conditioned_objects(FirstMentionPainter(), prompt, ordering, None) is None
    tiny = DeBiasStableDiffusionPipeline(**sd_components(77))  # a real pipeline: its tokenizer and policy
    assert conditioned_objects(tiny, prompt, ordering, None) == [True, True, False]
    assert (
        conditioned_objects(DeBiasStableDiffusionPipeline(**sd_components(248)), prompt, ordering, None) == [True] * 3
    )


def test_objects_cut_from_the_prompt_are_flagged_and_left_out_of_the_metrics(tmp_path):
    long = {"name": "long", "item": LONG_ITEM, "joiner": ". ", "suffix": "."}
    run = _run(tmp_path, {"painter": _tokenized_painter("truncate")}, templates=("list", long))
    cut = [r for r in run.records if not r.conditioned]
    assert cut and all(r.template == "long" and r.position == 3 for r in cut)
    assert len(cut) == 12  # every ordering x seed of the long template loses its third object
    metrics = json.loads(run.report.metrics_json.read_text())
    assert metrics["cut_from_prompt"]["images_left_out"] == 12
    assert metrics["cut_from_prompt"]["by_position"] == [
        {"model": "painter", "position": 3, "cut": 12, "present_anyway": 12}  # the painter draws it anyway
    ]
    assert sum(row["measurements"] for row in metrics["positions"]) == 36  # the 12 list images, 3 objects each
    assert "## Objects cut from the prompt" in run.report.summary.read_text()
    rows = json.loads(run.report.measurements_json.read_text())
    assert sum(not row["conditioned"] for row in rows) == 12 and len(rows) == 72
    with pytest.raises(ProminenceDataError, match="every image's prompt lost an object"):  # all cached: at the report
        _run(tmp_path, {"painter": _tokenized_painter("truncate")}, templates=(long,))
    painter = _tokenized_painter("truncate")
    with pytest.raises(ProminenceDataError, match="every prompt loses an object"):  # before generating
        _run(tmp_path / "fresh", {"painter": painter}, templates=(long,))
    assert painter.calls == 0


def test_the_store_skips_the_mention_check_only_when_asked(tmp_path):
    control = ImageJob("m", 0, "control", ("red cube",), 0, "An old oak table by a tall window.")  # names no cube
    store = ImageStore(tmp_path, {"m": "m"}, SamplingSettings(steps=1), {"m": "id"}, ColourDetector())
    painter = _tokenized_painter(None)
    with pytest.raises(ProminenceDataError, match="does not name 'red cube'"):
        store.generate(painter, [control], {control: None}, progress=False)
    assert not store.image_path(control).exists()
    sidecars = {control: None}
    assert store.generate(painter, [control], sidecars, progress=False, check_mentions=False) == 1
    assert sidecars[control]["conditioned"] is None
    stored = read_valid_sidecar(store.image_path(control), store.key(control))  # a valid pair, reused by a re-run
    assert stored["image_sha256"] == sidecars[control]["image_sha256"] and stored["conditioned"] is None
