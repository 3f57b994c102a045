"""train_encoder training: loop, frozen positions, exact resume, export into the SD pipeline, config, CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image, ImageDraw
from pipeline_builders import sd_components, seeded, tiny_unet
from safetensors.torch import load_file
from transformers import CLIPConfig, CLIPModel

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.errors import CheckpointError, OutputExistsError
from debias_diffusion.loading import load_text_encoder
from debias_diffusion.stretching import stretch_position_table, stretch_text_encoder
from debias_diffusion.text_model_layout import text_embeddings
from train_encoder.checkpointing import list_checkpoints, read_checkpoint_metadata
from train_encoder.cli import main
from train_encoder.config import ConfigError, TrainConfig, load_config, parse_override
from train_encoder.export import export_checkpoint
from train_encoder.model_setup import FrozenPositionRows, parameter_groups
from train_encoder.trainer import build_optimizer, lr_factor, train

ROOT = Path(__file__).parents[1]
TINY_YAML = ROOT / "train_encoder" / "configs" / "tiny.yaml"
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}
SHAPES = ("circle", "square", "triangle", "bar")
POSITION_KEY = "text_model.embeddings.position_embedding.weight"


# --- fixtures: a tiny CLIP model and a tiny captioned data set, written to disk ---------------------


def _tiny_clip(seed: int = 0) -> CLIPModel:
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=77, hidden_act="quick_gelu"),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=16,
    )  # fmt: skip
    return CLIPModel(config).eval()


def _draw(shape: str, colour: tuple[int, int, int], size: int = 48) -> Image.Image:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    box = (8, 8, size - 8, size - 8)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(size // 2, 6), (6, size - 6), (size - 6, size - 6)], fill=colour)
    else:
        draw.rectangle((4, size // 2 - 6, size - 4, size // 2 + 6), fill=colour)
    return image


def _caption(colour: str, shape: str) -> str:
    return (
        f"A picture of a {colour} {shape}. The {shape} is painted {colour} on a plain white background. "
        f"The {colour} {shape} sits in the middle of the frame. Nothing else is visible around the {shape}."
    )


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("source") / "tiny-clip"
    _tiny_clip().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """16 coloured shapes with four-sentence captions (images/ + captions.jsonl)."""
    root = tmp_path_factory.mktemp("shapes")
    (root / "images").mkdir()
    lines = []
    for colour, rgb in COLOURS.items():
        for shape in SHAPES:
            name = f"{colour}-{shape}.png"
            _draw(shape, rgb).save(root / "images" / name)
            lines.append(json.dumps({"image": name, "caption": _caption(colour, shape)}))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _config(source_dir: Path, data_dir: Path, output_dir: Path, **overrides) -> TrainConfig:
    values = {
        "model": str(source_dir),
        "train_data": str(data_dir / "captions.jsonl"),
        "image_root": str(data_dir / "images"),
        "output_dir": str(output_dir),
        **overrides,
    }
    return load_config(TINY_YAML, values)


def _metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, source_dir, data_dir):
    """The tiny.yaml run: 30 steps of batch 8 (lr 1e-3, weight decay 0.1) with one bad image in the data."""
    root = tmp_path_factory.mktemp("run")
    annotations = (data_dir / "captions.jsonl").read_text()
    bad = json.dumps({"image": "missing.png", "caption": _caption("red", "circle")})
    (root / "captions.jsonl").write_text(annotations + bad + "\n")
    config = _config(source_dir, data_dir, root / "out", train_data=str(root / "captions.jsonl"))
    result = train(config)
    return config, result


# --- training -----------------------------------------------------------------------------------------


def test_loss_falls_over_thirty_steps(trained):
    config, result = trained
    metrics = _metrics(Path(config.output_dir))
    assert [m["step"] for m in metrics] == list(range(1, 31))
    losses = [m["loss"] for m in metrics]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    chance = math.log(config.batch_size)  # uniform over the batch: what a model that matches nothing scores
    assert first > 0.95 * chance and last < 0.75 * chance, (first, last)
    assert {"loss_long", "loss_short", "lr", "logit_scale", "samples_per_second", "images_skipped"} <= metrics[0].keys()
    assert metrics[0]["lr"] == pytest.approx(1e-3 / 3)  # warmup step 1 of 3
    assert metrics[0]["logit_scale"] == pytest.approx(10.0, abs=0.05)  # reset from the source's 14.3
    assert metrics[-1]["lr"] < 1e-4  # cosine decay towards 0 at step 30
    assert result.state.step == 30 and result.state.images_skipped > 0  # the missing image is counted


def test_frozen_position_rows_are_bit_identical_and_the_rest_trained(trained, source_dir):
    config, result = trained
    stretched = stretch_position_table(load_file(source_dir / "model.safetensors")[POSITION_KEY], keep=20, ratio=4)
    final = load_file(result.checkpoint / "model" / "model.safetensors")[POSITION_KEY]
    assert final.shape == (248, 32)
    assert torch.equal(final[:20], stretched[:20])
    assert (final[20:] - stretched[20:]).abs().amax() > 1e-3  # trained (and decayed) rows moved


def test_checkpoints_keep_the_last_two_and_record_progress(trained):
    config, result = trained
    assert [path.name for path in list_checkpoints(config.output_dir)] == ["step-20", "step-30"]
    assert result.checkpoint.name == "step-30"
    metadata = read_checkpoint_metadata(result.checkpoint)
    assert metadata["state"]["step"] == 30 and metadata["recipe"] == "debias"
    assert metadata["shape"]["batches_per_epoch"] == 2  # 17 pairs, batch 8, last partial batch dropped
    assert not [p for p in (Path(config.output_dir) / "checkpoints").iterdir() if p.name.startswith(".")]


def test_frozen_rows_get_no_gradient_and_are_restored_after_weight_decay():
    model = stretch_text_encoder(_tiny_clip(), keep=20, ratio=4)
    frozen = FrozenPositionRows(model, 20)
    table = text_embeddings(model.text_model).position_embedding.weight
    before = table.detach().clone()
    optimizer = torch.optim.AdamW([table], lr=0.1, weight_decay=0.5)
    model.text_model(input_ids=torch.randint(1, 49000, (2, 248))).last_hidden_state.sum().backward()
    assert table.grad[:20].abs().sum() == 0 and table.grad[20:].abs().amax() > 0
    optimizer.step()
    assert not frozen.unchanged()  # decoupled weight decay shrank the frozen rows too...
    frozen.restore()
    assert frozen.unchanged() and torch.equal(table[:20], before[:20])  # ...until restored
    assert (table[20:] - before[20:]).abs().amax() > 0.05


def test_weight_decay_groups_follow_open_clip_unless_decay_all():
    model = _tiny_clip()
    model.vision_model.requires_grad_(False)
    decay, no_decay = (group["params"] for group in parameter_groups(model, 0.1))
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p in no_decay} >= {"logit_scale", "text_model.final_layer_norm.weight"}
    assert "text_model.embeddings.position_embedding.weight" in {names[id(p)] for p in decay}
    assert all(p.ndim >= 2 for p in decay) and all(p.ndim < 2 for p in no_decay)
    assert not any(names[id(p)].startswith("vision_model.") for p in decay + no_decay)  # frozen: not optimised
    (everything,) = parameter_groups(model, 0.1, decay_all=True)
    assert len(everything["params"]) == len(decay) + len(no_decay) and everything["weight_decay"] == 0.1


def test_exact_resume_after_a_kill_mid_epoch(tmp_path, source_dir, data_dir):
    """8 steps of 2 accumulated batches (4 batches per epoch); one run dies at step 5 and resumes from step 3
    (in the main process instead of two workers)."""
    options = dict(max_steps=8, batch_size=4, gradient_accumulation_steps=2, checkpoint_every=3, keep_checkpoints=0,
                   num_workers=2, export_final=False, log_every=1)  # fmt: skip
    whole = train(_config(source_dir, data_dir, tmp_path / "whole", **options))

    class Killed(Exception):
        pass

    def kill_at_5(state):
        if state.step == 5:
            raise Killed

    interrupted = _config(source_dir, data_dir, tmp_path / "interrupted", **options)
    with pytest.raises(Killed):
        train(interrupted, on_step=kill_at_5)
    step_3 = read_checkpoint_metadata(tmp_path / "interrupted" / "checkpoints" / "step-3")["state"]
    assert (step_3["epoch"], step_3["batches_done"]) == (1, 2)  # mid-epoch
    resumed = train(interrupted.replace(num_workers=0), resume="latest")  # crops do not depend on workers

    assert resumed.state.step == whole.state.step == 8
    final_whole = load_file(whole.checkpoint / "model" / "model.safetensors")
    final_resumed = load_file(resumed.checkpoint / "model" / "model.safetensors")
    start = load_file(source_dir / "model.safetensors")
    assert not torch.equal(final_whole["text_projection.weight"], start["text_projection.weight"])
    assert final_whole.keys() == final_resumed.keys()
    for key in final_whole:
        assert torch.equal(final_whole[key], final_resumed[key]), key
    resumed_losses = [m["loss"] for m in _metrics(tmp_path / "interrupted")]
    assert resumed_losses == [m["loss"] for m in _metrics(tmp_path / "whole")]  # killed steps 4-5 logged once


def test_resume_refuses_a_changed_run_and_a_fresh_run_refuses_old_checkpoints(trained, source_dir, data_dir):
    config, _ = trained
    with pytest.raises(OutputExistsError, match="resume"):
        train(config)
    with pytest.raises(CheckpointError, match="batch_size 8 -> 4"):
        train(config.replace(batch_size=4), resume="latest")


def test_empty_batches_are_skipped_on_every_step(tmp_path, source_dir, data_dir):
    """Some pairs point at missing images: batches with < 2 good pairs are skipped, the run goes on."""
    lines = (data_dir / "captions.jsonl").read_text().splitlines()
    bad = [json.dumps({"image": f"gone-{i}.png", "caption": _caption("blue", "bar")}) for i in range(8)]
    (tmp_path / "captions.jsonl").write_text("\n".join(lines[:12] + bad) + "\n")
    config = _config(source_dir, data_dir, tmp_path / "out", train_data=str(tmp_path / "captions.jsonl"),
                     batch_size=2, epochs=2, max_steps=None, export_final=False)  # fmt: skip
    result = train(config)
    state = result.state
    assert state.images_skipped == 2 * 8  # every bad pair, in both epochs
    assert 0 < state.batches_skipped < 2 * 10 and state.step > 0
    assert state.step == 2 * 10 - state.batches_skipped  # 10 batches per epoch; the rest stepped


def test_distillation_frozen_vision_and_gradient_checkpointing(tmp_path, source_dir, data_dir):
    config = _config(source_dir, data_dir, tmp_path / "out", max_steps=3, distill_weight=1.0, freeze_vision=True,
                     gradient_checkpointing=True, export_final=False, recipe="long-clip")  # fmt: skip
    result = train(config, resume="latest")  # nothing to resume yet: starts from the beginning
    metrics = _metrics(tmp_path / "out")
    assert result.state.step == 3 and all(m["loss_distill"] > 0 for m in metrics)
    assert metrics[0]["loss"] == pytest.approx(
        0.5 * metrics[0]["loss_long"] + 0.5 * metrics[0]["loss_short"] + metrics[0]["loss_distill"], rel=1e-5
    )
    start = load_file(source_dir / "model.safetensors")
    final = load_file(result.checkpoint / "model" / "model.safetensors")
    vision = [k for k in start if k.startswith(("vision_model.", "visual_projection."))]
    assert vision and all(torch.equal(start[k], final[k]) for k in vision)
    assert not torch.equal(start["text_projection.weight"], final["text_projection.weight"])


def test_memory_and_speed_knobs_leave_the_weights_of_six_steps_as_they_were(tmp_path, source_dir, data_dir):
    """Activation-memory knobs change what is kept, not the maths (bit-identical weights); the AdamW kernels
    (foreach, fused) reorder float operations only (equal to float tolerance)."""
    options = dict(max_steps=6, batch_size=4, checkpoint_every=0, export_final=False, lr=1e-3)

    def weights(label: str, **knobs) -> dict[str, torch.Tensor]:
        result = train(_config(source_dir, data_dir, tmp_path / label, **options, **knobs))
        return load_file(result.checkpoint / "model" / "model.safetensors")

    start, default = load_file(source_dir / "model.safetensors"), weights("default")
    assert not torch.equal(start["text_projection.weight"], default["text_projection.weight"])
    for label, knobs in {"plain": dict(lean_activations=False), "recompute": dict(recompute_mlp=True)}.items():
        other = weights(label, **knobs)
        assert all(torch.equal(default[key], other[key]) for key in default), label
    for impl in ("foreach", "fused"):
        other = weights(impl, optimizer_impl=impl)
        for key in default:
            if key.endswith("k_proj.bias"):  # its gradient is rounding noise (softmax ignores it), which Adam
                # normalises into steps of up to lr: kernels that round differently move it differently
                assert (other[key] - default[key]).abs().max() <= 6 * options["lr"], f"{impl}: {key}"
            else:
                torch.testing.assert_close(other[key], default[key], rtol=1e-5, atol=1e-6, msg=f"{impl}: {key}")


COMPILED = dict(compile_towers=True, compile_backend="aot_eager")  # traced by dynamo + AOTAutograd, no C++ build
SIX_STEPS = dict(max_steps=6, batch_size=4, checkpoint_every=3, keep_checkpoints=0, export_final=False, lr=1e-3)


def _compiled_names(folder: Path) -> list[str]:
    """Every key of every safetensors file under ``folder`` that names a compiled wrapper."""
    return [key for path in folder.rglob("*.safetensors") for key in load_file(path) if "_orig_mod" in key]


def _final_weights(result) -> dict[str, torch.Tensor]:
    return load_file(result.checkpoint / "model" / "model.safetensors")


def _assert_close_weights(weights: dict, reference: dict, label: str) -> None:
    assert weights.keys() == reference.keys(), label
    for key in reference:
        torch.testing.assert_close(weights[key], reference[key], rtol=1e-5, atol=1e-6, msg=f"{label}: {key}")


@pytest.fixture(scope="module")
def six_eager_steps(tmp_path_factory, source_dir, data_dir):
    """Six eager steps of batch 4 with checkpoints at steps 3 and 6: what the compiled runs must match."""
    return train(_config(source_dir, data_dir, tmp_path_factory.mktemp("eager") / "out", **SIX_STEPS))


def test_compile_towers_gives_the_eager_weights_of_six_steps_under_its_own_names(
    tmp_path, source_dir, data_dir, six_eager_steps
):
    """``compile_towers`` (aot_eager here: inductor needs minutes of C++ builds on this CPU) with the default
    lean activations gives the eager run's weights to float tolerance; the checkpoints and the export hold the
    eager module's keys, never ``_orig_mod.``. Also with gradient checkpointing and distillation (2 steps)."""
    compiled = train(_config(source_dir, data_dir, tmp_path / "compiled", **{**SIX_STEPS, "export_final": True},
                             **COMPILED))  # fmt: skip
    _assert_close_weights(_final_weights(compiled), _final_weights(six_eager_steps), "lean activations")
    assert compiled.export_dir is not None and not _compiled_names(tmp_path / "compiled")
    exported = load_file(compiled.export_dir / "clip" / "model.safetensors")
    assert exported.keys() == _final_weights(compiled).keys()

    knobs = dict(SIX_STEPS, max_steps=2, gradient_checkpointing=True, distill_weight=1.0)
    eager = train(_config(source_dir, data_dir, tmp_path / "checkpointing", **knobs))
    compiled = train(_config(source_dir, data_dir, tmp_path / "checkpointing-compiled", **knobs, **COMPILED))
    _assert_close_weights(_final_weights(compiled), _final_weights(eager), "checkpointing + distillation")


def test_a_compiled_run_resumes_an_eager_one_and_the_other_way(tmp_path, source_dir, data_dir, six_eager_steps):
    """Checkpoints do not depend on ``compile_towers``: a compiled run resumes the eager run's step-3
    checkpoint, an eager run a compiled run's, and both end with the eager run's weights (float tolerance)."""

    class Killed(Exception):
        pass

    def kill_at_3(state):
        if state.step == 3:  # after its checkpoint
            raise Killed

    with pytest.raises(Killed):
        train(_config(source_dir, data_dir, tmp_path / "from-compiled", **SIX_STEPS, **COMPILED), on_step=kill_at_3)
    (tmp_path / "from-eager" / "checkpoints").mkdir(parents=True)
    shutil.copytree(six_eager_steps.checkpoint.parent / "step-3", tmp_path / "from-eager" / "checkpoints" / "step-3")
    for folder, knobs in ((tmp_path / "from-compiled", {}), (tmp_path / "from-eager", COMPILED)):
        resumed = train(_config(source_dir, data_dir, folder, **SIX_STEPS, **knobs), resume="latest")
        assert resumed.state.step == 6 and not _compiled_names(folder)
        _assert_close_weights(_final_weights(resumed), _final_weights(six_eager_steps), folder.name)


def test_optimizer_impl_picks_adamw_kernels_and_leaves_torchs_choice_by_default():
    model = _tiny_clip()
    for impl, flags in {"default": (None, None), "foreach": (True, None), "fused": (None, True)}.items():
        config = TrainConfig(model="m", train_data="c.jsonl", optimizer_impl=impl)
        optimizer = build_optimizer(config, model)
        assert (optimizer.defaults["foreach"], optimizer.defaults["fused"]) == flags, impl


def test_lr_schedule_warmup_then_cosine():
    factors = [lr_factor(step, warmup_steps=4, total_steps=12) for step in range(13)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[8] == pytest.approx(0.5) and factors[12] == pytest.approx(0.0)
    assert all(a >= b for a, b in zip(factors[3:], factors[4:], strict=False))
    assert lr_factor(10, warmup_steps=4, total_steps=12, schedule="constant") == 1.0


# --- export ---------------------------------------------------------------------------------------------


def test_export_loads_into_the_sd_pipeline_and_conditions_on_248_tokens(trained, tmp_path):
    config, result = trained
    export = export_checkpoint(result.checkpoint, tmp_path / "export")
    meta = json.loads((export.text_encoder / "train_encoder_export.json").read_text())
    assert (meta["recipe"], meta["step"], meta["positions"], meta["source"]) == ("debias", 30, 248, config.model)

    loaded = load_text_encoder(export.text_encoder)
    assert loaded.context_length == 248 and loaded.tokenizer.model_max_length == 248
    clip = CLIPModel.from_pretrained(export.clip)
    ids = torch.tensor([[49406, 320, 1929, 49407] + [0] * 244])
    with torch.no_grad():
        pooled = clip.get_text_features(input_ids=ids)
        expected = getattr(pooled, "pooler_output", pooled)
        torch.testing.assert_close(loaded.text_encoder(input_ids=ids).text_embeds, expected)

    components = sd_components(248)
    components.update(unet=tiny_unet(32), text_encoder=load_text_encoder(export.text_encoder, with_projection=False).text_encoder,
                      tokenizer=loaded.tokenizer)  # fmt: skip
    pipe = DeBiasStableDiffusionPipeline(**components)
    head = "A red circle sits in the middle of a white picture. " * 9
    prompts = [head + "A small blue square hides in the corner.", head + "A tall green bar leans on the left."]
    head_tokens = len(loaded.tokenizer(head.strip()).input_ids) - 1
    assert 77 < head_tokens < 230
    (a, _), (b, _) = (pipe.encode_prompt(p, "cpu", 1, True, negative_prompt=None) for p in prompts)
    assert a.shape == (1, 248, 32)
    assert torch.equal(a[:, :head_tokens], b[:, :head_tokens])
    assert (a[:, head_tokens:] - b[:, head_tokens:]).abs().amax() > 1e-4  # the tail past token 77 conditions
    image = pipe(prompts[0], num_inference_steps=2, height=16, width=16, output_type="np", generator=seeded()).images
    assert image.shape == (1, 16, 16, 3)

    from_pipe = DeBiasStableDiffusionPipeline.from_pipe(pipe, text_encoder=str(export.text_encoder))
    assert from_pipe.tokenizer.model_max_length == 248
    with pytest.raises(OutputExistsError):
        export_checkpoint(result.checkpoint, tmp_path / "export")


# --- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"learning_rate": 1e-5}, "unknown config key 'learning_rate'"),
        ({"lrr": 1e-5}, "did you mean 'lr'"),
        ({"lr": -1}, "lr=-1.0: must be > 0"),
        ({"lr": "fast"}, "lr: expected a number, got 'fast'"),
        ({"batch_size": 1}, "batch_size=1: must be >= 2"),
        ({"batch_size": 2.5}, "batch_size: expected an integer"),
        ({"recipe": "sigclip"}, "recipe='sigclip': must be one of debias, fix-clip, long-clip"),
        ({"mixed_precision": "fp8"}, "mixed_precision='fp8'"),
        ({"label_smoothing": 1.0}, r"label_smoothing=1.0: must be in \[0, 1\)"),
        ({"short_weight": 2}, "short_weight=2.0"),
        ({"freeze_text": True, "freeze_vision": True}, "nothing would train"),
        ({"freeze_text": "maybe"}, "freeze_text: expected true or false"),
        ({"trackers": ["tensorbored"]}, "unknown tracker 'tensorbored'"),
        ({"train_data": None}, "train_data=None: must be an annotation file"),
        ({"train_data": "data/{000..009}.tar"}, "set samples_per_epoch"),
        ({"train_data": "captions.parquet"}, "cannot tell the format"),
        ({"stretch_to": 20}, "stretch_to=20: must be null or > keep"),
        ({"model": None}, "model: a value is required"),
        ({"optimizer_impl": "apex"}, "optimizer_impl='apex': must be one of default, foreach, fused"),
        ({"recompute_mlp": True, "gradient_checkpointing": True}, "recompute_mlp: true needs lean_activations"),
        ({"compile_towers": True, "recompute_mlp": True}, "compile_towers: true cannot be combined with recompute_mlp"),
        ({"compile_towers": True, "compile_backend": "inductr"}, "compile_backend='inductr': must be a torch.compile"),
    ],
)
def test_config_errors_name_the_bad_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY_YAML, {"model": "m", "train_data": "c.jsonl", **override})


def test_config_yaml_overrides_and_coercion(tmp_path):
    config = load_config(TINY_YAML, ["model=m", "train_data=c.jsonl", "lr=1e-5", "trackers=[tensorboard]",
                                      "max_steps=null", "freeze_vision=true"])  # fmt: skip
    assert (config.lr, config.trackers, config.max_steps, config.freeze_vision) == (1e-5, ["tensorboard"], None, True)
    assert config.batch_size == 8 and config.weight_decay == 0.1  # from tiny.yaml
    assert parse_override("short_weight=0.25") == ("short_weight", 0.25)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("lr")
    (tmp_path / "list.yaml").write_text("- lr\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("lr: [1\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("name", ["debias-vit-b-16", "debias-vit-l-14", "long-clip-vit-l-14"])
def test_paper_configs_load(name):
    config = load_config(name)  # a bundled name, the same file as the path
    assert config == load_config(ROOT / "train_encoder" / "configs" / f"{name}.yaml")
    hyper = (config.lr, config.weight_decay, config.warmup_steps, config.stretch_to, config.keep)
    assert hyper == (1e-6, 0.01, 200, 248, 20)
    assert config.epochs == (6 if name.startswith("long-clip") else 3) and config.skip_first == 1000


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_exit_codes_and_messages(tmp_path, capsys, trained):
    config, result = trained
    shards = ["--train-data", "data/{a,b}.tar", "--samples-per-epoch", "64", "--trackers", "[wandb]"]
    argv = ["train", "--config", str(TINY_YAML), "--model", "open_clip:ViT-B-16", *shards, "--set", "lr=2e-4"]
    assert main([*argv, "--freeze-text", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train_data"] == "data/{a,b}.tar" and printed["model"] == "open_clip:ViT-B-16"
    assert (printed["lr"], printed["freeze_text"], printed["trackers"], printed["batch_size"]) == (
        2e-4,
        True,
        ["wandb"],
        8,
    )
    cases = [
        (["train", "--config", str(TINY_YAML), "--set", "lr=-1", "--train-data", "c.jsonl"], "error: lr=-1.0"),
        (["train", "--config", str(TINY_YAML), "--set", "nope=1"], "error: unknown config key 'nope'"),
        (["train", "--config", str(tmp_path / "absent.yaml")], "error: config file"),
        (["export", str(tmp_path), "--output", str(tmp_path / "x")], "error: "),
        (["eval", "--model", "a", "--dataset", "urban1k=x"], "error: --clip-model 'a' must look like NAME=VALUE"),
        (["eval", "--model", "a=b", "--dataset", "imagenet=x"], "error: --dataset 'imagenet': unknown"),
        (["eval", "--model", "a=b", "--dataset", "urban1k=x", "--probe", "nope"], "error: --caption-variants 'nope'"),
        (["eval", "--model", "a=b", "--dataset", f"urban1k={tmp_path}"], "error: urban1k: folder"),
    ]
    if importlib.util.find_spec("tensorboard") is None:  # trackers are optional: a missing one is a clear error
        tiny = ["train", "--config", str(TINY_YAML), "--model", "m", "--train-data", "c.jsonl"]
        cases.append(([*tiny, "--trackers", "tensorboard"], "error: trackers: 'tensorboard' is not installed"))
    for argv, message in cases:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert main(["export", str(config.output_dir), "--output", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "text_encoder" / "model.safetensors").is_file()


def test_exports_carry_a_model_card_with_the_run_facts(trained, tmp_path):
    config, result = trained
    final_card = (Path(config.output_dir) / "final" / "README.md").read_text()  # the trainer's own export
    assert "| steps | 30 |" in final_card and "| hardware | 1 x " in final_card
    (Path(config.output_dir) / "eval").mkdir(exist_ok=True)
    (Path(config.output_dir) / "eval" / "results.md").write_text(
        "| dataset | probe |\n| --- | --- |\n| shapes | full |\n"
    )
    export = export_checkpoint(result.checkpoint, tmp_path / "export", license="mit")
    card = (export.destination / "README.md").read_text()
    assert "license: mit" in card and "library_name: transformers" in card and "base_model" not in card  # local source
    drift = json.loads((Path(config.output_dir) / "drift.json").read_text())["mean_cosine_first_77"]
    assert f"**{drift:.4g}**" in card and "| shapes | full |" in card and "| lr | 0.001 |" in card


def test_export_push_to_hub_uploads_once_exported_and_refuses_offline_before_work(
    trained, tmp_path, monkeypatch, capsys
):
    from huggingface_hub import HfApi

    config, _ = trained
    calls = []

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls.append((repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: calls.append(("create", repo_id)))
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    argv = ["export", str(config.output_dir), "--output", str(tmp_path / "pushed"), "--push-to-hub", "me/tiny-debias"]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(argv) == 2
    assert "HF_HUB_OFFLINE" in capsys.readouterr().err and not (tmp_path / "pushed").exists() and not calls
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert main(argv) == 0
    assert calls == [("create", "me/tiny-debias"), ("me/tiny-debias", ["README.md", "clip", "text_encoder"])]
    assert "pushed to https://huggingface.co/me/tiny-debias/commit/abc" in capsys.readouterr().out

    def failing_upload(self, **kwargs):
        raise OSError("connection refused")

    monkeypatch.setattr(HfApi, "upload_folder", failing_upload)
    assert main([*argv[:3], str(tmp_path / "kept"), *argv[4:]]) == 2
    err = capsys.readouterr().err
    assert "connection refused" in err and f"hf upload me/tiny-debias {tmp_path / 'kept'}" in err
    assert (tmp_path / "kept" / "README.md").is_file()  # the export is kept whole
    assert main([*argv[:3], str(tmp_path / "bad"), "--push-to-hub", "no owner"]) == 2
    assert "is not a Hub repo id" in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "train_encoder", "export", str(tmp_path), "--output", str(tmp_path / "x")],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2 and "error: " in done.stderr and "neither a checkpoint folder" in done.stderr


def test_training_reports_hidden_state_drift_from_its_source(trained, source_dir):
    config, _ = trained
    drift = json.loads((Path(config.output_dir) / "drift.json").read_text())
    assert drift["reference"] == str(source_dir) and drift["captions"] == 16  # distinct captions of the 17 pairs
    assert len(drift["per_position"]) == 77  # the 77-position source bounds the comparison
    assert drift["per_position"][0] < 1.0 - 1e-4  # both towers trained: even position 0's state moved
    assert 0.0 < drift["mean_cosine_first_77"] < 1.0 - 1e-3


def test_eval_cli_reports_retrieval_and_hidden_state_drift(tmp_path, trained, source_dir, data_dir, capsys):
    config, _ = trained
    urban = tmp_path / "Urban1k"
    (urban / "image").mkdir(parents=True)
    (urban / "caption").mkdir()
    for index, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle")]):
        (urban / "image" / f"{index}.jpg").write_bytes((data_dir / "images" / f"{colour}-{shape}.png").read_bytes())
        (urban / "caption" / f"{index}.txt").write_text(_caption(colour, shape))
    final = Path(config.output_dir) / "final" / "clip"
    common = ["eval", "--model", f"trained={final}", "--model", f"source={source_dir}", "--dataset",
              f"urban1k={tmp_path}", "--num-workers", "0", "--stretch-to", "248"]  # fmt: skip
    argv = [*common, "--probe", "full", "--probe", "first_only", "--reference", str(source_dir),
            "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {(r["model"], r["caption_variant"]) for r in results["results"]}
    assert rows == {(m, p) for m in ("trained", "source") for p in ("full", "first_only")}
    drift = json.loads((tmp_path / "out" / "drift.json").read_text())["models"]
    assert len(drift["trained"]["per_position"]) == 77  # the reference has 77 positions
    assert drift["source"]["per_position"][:20] == [pytest.approx(1.0, abs=1e-5)] * 20  # KPS keeps rows < 20
    assert drift["trained"]["mean_cosine_first_77"] < drift["source"]["mean_cosine_first_77"] - 1e-3
    assert "mean cosine" in capsys.readouterr().out

    # default --reference auto: an export is compared with the checkpoint it was trained from; others skipped
    assert main([*common, "--output-dir", str(tmp_path / "auto")]) == 0
    auto = json.loads((tmp_path / "auto" / "drift.json").read_text())["models"]
    assert set(auto) == {"trained"} and auto["trained"]["reference"] == str(source_dir)
    assert auto["trained"]["per_position"] == drift["trained"]["per_position"]
    assert main([*common, "--reference", "none", "--output-dir", str(tmp_path / "none")]) == 0
    assert not (tmp_path / "none" / "drift.json").exists()


@pytest.mark.skipif(os.environ.get("TRAIN_ENCODER_DDP_TEST") != "1", reason="slow: set TRAIN_ENCODER_DDP_TEST=1")
@pytest.mark.parametrize(
    "recipe_args",
    [
        [],
        ["--recipe", "fix-clip", "--set", "fix_clip.groups=1", "--set", "fix_clip.group_size=1"],
        ["--compile-towers", "true", "--compile-backend", "aot_eager"],  # compiled after DDP wraps the model
    ],
    ids=["debias", "fix-clip", "compiled-towers"],
)
def test_two_process_ddp_resume_is_exact(tmp_path, source_dir, data_dir, recipe_args):
    """torchrun, 2 CPU processes (gloo): 6 steps straight vs resumed from the step-2 checkpoint."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1"}
    common = ["--config", str(TINY_YAML), "--model", str(source_dir), "--train-data", str(data_dir / "captions.jsonl"),
              "--image-root", str(data_dir / "images"), "--max-steps", "6", "--batch-size", "4",
              "--gradient-accumulation-steps", "2", "--checkpoint-every", "2", "--keep-checkpoints", "0",
              "--export-final", "false", "--num-workers", "1", *recipe_args]  # fmt: skip

    def launch(output: Path, *extra: str) -> None:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                   "-m", "train_encoder", "train", *common, "--output-dir", str(output), *extra]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]

    launch(tmp_path / "whole")
    assert read_checkpoint_metadata(tmp_path / "whole" / "checkpoints" / "step-6")["shape"]["world_size"] == 2
    (tmp_path / "resumed" / "checkpoints").mkdir(parents=True)
    os.rename(tmp_path / "whole" / "checkpoints" / "step-2", tmp_path / "resumed" / "checkpoints" / "step-2")
    launch(tmp_path / "resumed", "--resume", "latest")
    whole = load_file(tmp_path / "whole" / "checkpoints" / "step-6" / "model" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "checkpoints" / "step-6" / "model" / "model.safetensors")
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    if "fix-clip" in recipe_args:  # the recipe's image-side extras resume exactly too
        extras = [load_file(tmp_path / run / "checkpoints" / "step-6" / "recipe_extras.safetensors")
                  for run in ("whole", "resumed")]  # fmt: skip
        assert all(torch.equal(extras[0][key], extras[1][key]) for key in extras[0])
