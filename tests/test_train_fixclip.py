"""The fix-clip recipe: masking, regional attention, Gaussian layer weights, each loss term, the custom
vision forward, config errors, checkpoint/resume of the extras, an offline end-to-end run, export, and
the eval CLI comparing fix-clip, long-clip and debias side by side."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from test_train_loop import TINY_YAML, _caption, _config, _metrics, _tiny_clip, data_dir, source_dir  # noqa: F401  (fixtures, used through `tiny`)
from transformers import CLIPModel

from debias_diffusion.errors import CheckpointError
from debias_diffusion.loading import load_text_encoder
from debias_diffusion.stretching import stretch_position_table
from train_encoder.checkpointing import read_checkpoint_metadata
from train_encoder.cli import main
from train_encoder.config import ConfigError, load_config
from train_encoder.file_names import EXTRAS_FILE
from train_encoder.fix_clip import FIX_CLIP, FixClipImageSide, FixClipRecipe, FixClipSettings
from train_encoder.fix_clip.hierarchy import HierarchicalHeads, gaussian_layer_weights, layer_groups
from train_encoder.fix_clip.loss import fix_clip_loss
from train_encoder.fix_clip.masking import masked_count, random_patch_mask, replace_masked_patches
from train_encoder.fix_clip.regions import attention_allowed, attention_bias
from train_encoder.fix_clip.vision import vision_forward
from train_encoder.model_output import TwoCaptionOutput
from train_encoder.model_setup import TwoCaptionCLIP
from train_encoder.recipes import get_recipe
from train_encoder.trainer import resolve_recipe, train

pytestmark = pytest.mark.usefixtures("single_torch_thread")

ROOT = Path(__file__).parents[1]
# the tiny model has 2 image-encoder layers: one intermediate layer, so one group of one layer
FIX = {"recipe": "fix-clip", "fix_clip": {"groups": 1, "group_size": 1}}
TINY_FIX = FixClipSettings(groups=1, group_size=1)


def _pixels(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# --- recipe and config ------------------------------------------------------------------------------


def test_fix_clip_is_a_registered_recipe_configured_from_the_config():
    recipe = get_recipe("fix-clip")
    assert recipe is FIX_CLIP and isinstance(recipe, FixClipRecipe)
    assert (recipe.short_weight, recipe.pca_components) == (0.5, None)
    config = load_config(TINY_YAML, {"model": "m", "train_data": "c.jsonl", **FIX, "fix_clip.prompts": 6})
    configured = resolve_recipe(config)
    assert configured.settings == FixClipSettings(prompts=6, groups=1, group_size=1)
    debias = load_config(TINY_YAML, {"model": "m", "train_data": "c.jsonl"})
    assert resolve_recipe(debias).image_side(_tiny_clip()) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"fix_clip.mask_ratio": 1.0}, r"fix_clip\.mask_ratio=1.0: must be in \[0, 1\)"),
        ({"fix_clip.prompts": -1}, r"fix_clip\.prompts=-1: must be >= 0"),
        ({"fix_clip.region_grid": 0}, r"fix_clip\.region_grid=0: must be >= 1"),
        ({"fix_clip.sigma": 0}, r"fix_clip\.sigma=0.0: must be > 0"),
        ({"fix_clip.center": 3}, r"fix_clip\.center=3.0: must be null .* \[0, 0\]"),
        ({"fix_clip.head_init": "zeros"}, r"fix_clip\.head_init='zeros': must be one of copy, random"),
        ({"fix_clip.hierarchy_weight": -0.1}, r"fix_clip\.hierarchy_weight=-0.1"),
        ({"fix_clip.prompts": "many"}, r"fix_clip\.prompts: expected an integer, got 'many'"),
        (
            {"fix_clip.mask_ration": 1},
            r"unknown config key fix_clip\.mask_ration \(did you mean fix_clip\.mask_ratio\?\)",
        ),
        ({"fix_clip": [1, 2]}, r"fix_clip: expected a mapping such as \{mask_ratio: ...\}, got \[1, 2\]"),
        ({"pca_components": 32}, "masked images, not principal components"),
        (
            {"recipe": "debias", "fix_clip.prompts": 8},
            r"fix_clip=\{'prompts': 8, 'groups': 1, 'group_size': 1\} applies to recipe 'fix-clip' only, but recipe='debias'",
        ),
    ],
)
def test_bad_fix_clip_values_are_clear_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY_YAML, {"model": "m", "train_data": "c.jsonl", **FIX, **override})


def test_settings_the_model_cannot_hold_are_refused_when_the_image_side_is_built():
    model = _tiny_clip()  # 4x4 patches, 2 layers
    with pytest.raises(ConfigError, match=r"fix_clip\.region_grid=5: must lie in 1..4"):
        FixClipImageSide(model, FixClipSettings(region_grid=5, groups=1, group_size=1))
    with pytest.raises(ConfigError, match="the image encoder has 2 layers .1 intermediate.; lower one"):
        FixClipImageSide(model, FixClipSettings())  # 2 groups x 4 layers


@pytest.mark.parametrize("name", ["fix-clip-vit-b-16", "fix-clip-vit-l-14"])
def test_bundled_fix_clip_configs_load(name):
    config = load_config(name)
    assert config == load_config(ROOT / "train_encoder" / "configs" / f"{name}.yaml")
    assert (config.recipe, config.stretch_to, config.keep, config.fix_clip.mask_ratio) == ("fix-clip", 248, 20, 0.75)
    layers = 12 if "b-16" in name else 24
    groups = layer_groups(layers, config.fix_clip.groups, config.fix_clip.group_size)
    assert groups[-1][-1] == layers - 2  # the groups end at the layer before the last


def _previous_release_layout(values: dict) -> dict:
    """A config as the previous release saved it: every FIX-CLIP knob a flat ``fix_clip_*`` key, whatever the recipe."""
    values = dict(values)
    settings = values.pop("fix_clip") or {}
    return {**values, **{f"fix_clip_{key}": value for key, value in {**asdict(FixClipSettings()), **settings}.items()}}


def test_fix_clip_settings_are_one_nested_object_reachable_by_dotted_keys():
    base = {"model": "m", "train_data": "c.jsonl", "recipe": "fix-clip"}
    nested = load_config(TINY_YAML, {**base, "fix_clip": {"groups": 1, "prompts": 6}})
    assert nested.fix_clip == FixClipSettings(groups=1, prompts=6)
    assert load_config(TINY_YAML, {**base, "fix_clip.groups": "1", "fix_clip.prompts": 6}) == nested
    assert load_config(TINY_YAML, {**base, "fix_clip": {"groups": 3, "prompts": 6}, "fix_clip.groups": 1}) == nested
    assert nested.to_dict()["fix_clip"] == asdict(FixClipSettings(groups=1, prompts=6))
    assert load_config(TINY_YAML, base).fix_clip == FixClipSettings()  # null: the defaults, written out
    assert load_config(TINY_YAML, {"model": "m", "train_data": "c.jsonl"}).fix_clip is None  # not for debias


def test_flat_fix_clip_keys_still_load_with_a_deprecation_warning(tmp_path):
    base = {"model": "m", "train_data": "c.jsonl", "recipe": "fix-clip"}
    with pytest.warns(DeprecationWarning, match=r"fix_clip_groups, fix_clip_prompts are deprecated.*write fix_clip\.groups, fix_clip\.prompts"):  # fmt: skip
        old = load_config(TINY_YAML, {**base, "fix_clip_groups": 1, "fix_clip_prompts": 6})
    assert old == load_config(TINY_YAML, {**base, "fix_clip": {"groups": 1, "prompts": 6}})
    with pytest.raises(ConfigError, match=r"fix_clip\.prompts=-1: must be >= 0"):
        load_config(TINY_YAML, {**base, "fix_clip_prompts": -1})
    # saved configs of the previous release hold every fix_clip_* key, also for the other recipes
    for overrides in ({}, {"recipe": "fix-clip", "fix_clip.prompts": 6}):
        current = load_config(TINY_YAML, {"model": "m", "train_data": "c.jsonl", **overrides})
        saved = tmp_path / f"{current.recipe}.yaml"
        saved.write_text(yaml.safe_dump(_previous_release_layout(current.to_dict()), sort_keys=False), encoding="utf-8")
        with pytest.warns(DeprecationWarning):
            assert load_config(saved) == current


def test_old_and_new_fix_clip_flags_print_the_same_config(capsys):
    common = ["train", "--config", "tiny", "--recipe", "fix-clip", "--model", "m", "--train-data", "c.jsonl", "--print-config"]  # fmt: skip
    assert main([*common, "--fix-clip.groups", "1", "--fix-clip.head-init", "random"]) == 0
    new = capsys.readouterr().out
    assert yaml.safe_load(new)["fix_clip"]["groups"] == 1 and yaml.safe_load(new)["fix_clip"]["head_init"] == "random"
    with pytest.warns(DeprecationWarning, match="fix_clip_groups, fix_clip_head_init are deprecated"):
        assert main([*common, "--fix-clip-groups", "1", "--fix-clip-head-init", "random"]) == 0
    assert capsys.readouterr().out == new


# --- masking --------------------------------------------------------------------------------------------


def test_patch_mask_masks_the_ratio_per_image_and_is_seeded():
    draw = lambda seed: random_patch_mask(5, 196, 0.75, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    mask = draw(0)
    assert mask.dtype == torch.bool and mask.shape == (5, 196)
    assert mask.sum(dim=1).tolist() == [147] * 5  # round(0.75 * 196)
    assert torch.equal(mask, draw(0)) and not torch.equal(mask, draw(1))
    assert len({tuple(row.tolist()) for row in mask}) == 5  # each image its own patches
    assert masked_count(16, 0.75) == 12 and masked_count(4, 0.9) == 3 and masked_count(16, 0.0) == 0  # one stays
    with pytest.raises(ValueError, match="mask ratio"):
        random_patch_mask(1, 4, 1.0, generator=torch.Generator())


def test_masked_patches_become_the_zero_initialised_learnable_token_plus_their_position():
    model = _tiny_clip()
    side = FixClipImageSide(model, TINY_FIX)
    assert side.mask_token.requires_grad and torch.equal(side.mask_token, torch.zeros(32))
    embeddings = model.vision_model.embeddings(_pixels())
    positions = model.vision_model.embeddings.position_embedding.weight[1:]
    mask = side.batch_inputs(3, generator=torch.Generator().manual_seed(0))["patch_mask"]
    assert mask.shape == (3, 16) and mask.sum(dim=1).tolist() == [12] * 3
    token = torch.randn(32, requires_grad=True)
    out = replace_masked_patches(embeddings, mask, token, positions)
    assert torch.equal(out[:, 0], embeddings[:, 0])  # CLS never masked
    for row in range(3):
        for patch in range(16):
            expected = (token + positions[patch]) if mask[row, patch] else embeddings[row, 1 + patch]
            assert torch.equal(out[row, 1 + patch], expected)
    out.sum().backward()
    assert torch.equal(token.grad, torch.full((32,), float(mask.sum())))  # the token gets every masked gradient


# --- regional prompts: the attention mask ---------------------------------------------------------------


def _expected_allowed(query: int, key: int, side: int, prompts: int, grid: int) -> bool:
    """The published rule, written from token kinds and patch coordinates."""
    patches = side * side

    def kind(token: int) -> tuple[str, int]:
        if token == 0:
            return "cls", -1
        if token <= patches:
            row, col = divmod(token - 1, side)
            return "patch", (row * grid // side) * grid + col * grid // side  # its region
        return "prompt", (token - 1 - patches) % (grid * grid)  # the region it covers

    (query_kind, query_region), (key_kind, key_region) = kind(query), kind(key)
    if query_kind == "cls":
        return True  # CLS sees everything
    if query_kind == "patch":
        return key_kind in ("cls", "patch")  # patches never see prompts
    return key == query or (key_kind == "patch" and key_region == query_region)  # itself + its region


@pytest.mark.parametrize(("side", "prompts", "grid"), [(4, 6, 2), (3, 5, 2), (4, 2, 1), (4, 0, 2)])
def test_attention_mask_checked_exhaustively_on_tiny_grids(side, prompts, grid):
    allowed = attention_allowed(side, prompts, grid)
    total = 1 + side * side + prompts
    assert allowed.shape == (total, total)
    for query in range(total):
        for key in range(total):
            assert bool(allowed[query, key]) == _expected_allowed(query, key, side, prompts, grid), (query, key)
    if (side, prompts, grid) == (4, 6, 2):  # 2x2 regions of 2x2 patches; prompts 4 and 5 wrap to regions 0, 1
        assert allowed[17:, 1:17].sum(dim=1).tolist() == [4] * 6
        assert allowed[17, 1:17].nonzero().flatten().tolist() == [0, 1, 4, 5]
        assert torch.equal(allowed[21, 1:17], allowed[17, 1:17])  # prompts 0 and 4 share region 0


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_attention_mask_holds_inside_a_real_layer(implementation):
    """Perturb prompts: patches and other prompts do not change; perturb region 0's patches: prompts of region 1
    do not change; CLS changes in both cases."""
    model = _tiny_clip()
    model.set_attn_implementation(implementation)
    layer = model.vision_model.encoder.layers[0]
    side, prompts, grid = 4, 4, 2
    bias = attention_bias(attention_allowed(side, prompts, grid), implementation, torch.float32)
    assert bias.dtype == (torch.bool if implementation == "sdpa" else torch.float32)
    hidden = torch.randn(1, 21, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = layer(hidden, bias)
        changed_prompt = hidden.clone()
        changed_prompt[:, 17] += torch.randn(32)  # not a constant: LayerNorm removes those  # prompt 0 (region 0)
        after_prompt = layer(changed_prompt, bias)
        changed_patch = hidden.clone()
        changed_patch[:, 1] += torch.randn(32)  # patch (0, 0): region 0
        after_patch = layer(changed_patch, bias)
    torch.testing.assert_close(after_prompt[:, 1:17], base[:, 1:17], rtol=0, atol=1e-6)  # patches blind to prompts
    torch.testing.assert_close(after_prompt[:, 18:], base[:, 18:], rtol=0, atol=1e-6)  # prompts blind to each other
    torch.testing.assert_close(after_patch[:, 18], base[:, 18], rtol=0, atol=1e-6)  # prompt 1 covers region 1
    assert (after_patch[:, 17] - base[:, 17]).abs().amax() > 1e-3  # prompt 0 sees its region
    assert (after_prompt[:, 0] - base[:, 0]).abs().amax() > 1e-3  # CLS sees prompts
    with pytest.raises(ConfigError, match="attn_implementation='flash_attention_2'"):
        attention_bias(attention_allowed(side, prompts, grid), "flash_attention_2", torch.float32)


# --- the custom vision forward --------------------------------------------------------------------------


def test_custom_forward_without_prompts_or_mask_equals_clip_vision_model():
    model = _tiny_clip()
    pixels = _pixels()
    with torch.no_grad():
        stock = model.vision_model(pixel_values=pixels, output_hidden_states=True)
        ours = vision_forward(model.vision_model, pixels)
    torch.testing.assert_close(ours.pooled, stock.pooler_output, rtol=0, atol=1e-5)
    for layer, state in enumerate(ours.cls_states):  # hidden_states[0] is the embedding output
        torch.testing.assert_close(state, stock.hidden_states[layer + 1][:, 0], rtol=0, atol=1e-5)


def test_image_side_branches_and_sdpa_equals_eager():
    model = _tiny_clip()
    side = FixClipImageSide(model, TINY_FIX)
    pixels = _pixels()
    mask = side.batch_inputs(3, generator=torch.Generator().manual_seed(1))["patch_mask"]
    with torch.no_grad():
        plain = model.get_image_features(pixel_values=pixels)
        plain = getattr(plain, "pooler_output", plain)
        sdpa = side(model, pixels, mask)
        model.set_attn_implementation("eager")
        eager = side(model, pixels, mask)
    assert len(sdpa.hierarchy_features) == 1 and sdpa.hierarchy_features[0].shape == (3, 16)
    for a, b in zip(sdpa, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert (sdpa.image_features - sdpa.short_image_features).abs().amax() > 1e-4  # masking changes the image
    assert (sdpa.image_features - plain).abs().amax() > 1e-6  # the prompts reach CLS during training
    no_prompts = FixClipImageSide(model, FixClipSettings(prompts=0, mask_ratio=0.0, groups=1, group_size=1))
    with torch.no_grad():
        out = no_prompts(model, pixels, torch.zeros(3, 16, dtype=torch.bool))
    torch.testing.assert_close(out.image_features, plain, rtol=0, atol=1e-5)  # = the raw tower used at inference
    torch.testing.assert_close(out.short_image_features, plain, rtol=0, atol=1e-5)


# --- hierarchical alignment -----------------------------------------------------------------------------


def test_gaussian_layer_weights_sum_to_one_peak_and_are_symmetric():
    weights = gaussian_layer_weights(5, 1.0)
    assert weights.sum().item() == pytest.approx(1.0) and int(weights.argmax()) == 2
    assert torch.allclose(weights, weights.flip(0))
    assert (weights[1] / weights[2]).item() == pytest.approx(math.exp(-0.5))
    even = gaussian_layer_weights(4, 0.7)
    assert torch.allclose(even, even.flip(0)) and even[1] == even[2] and even[1] > even[0]
    shifted = gaussian_layer_weights(4, 1.0, center=0)
    assert int(shifted.argmax()) == 0 and bool((shifted[:-1] > shifted[1:]).all())
    assert torch.allclose(gaussian_layer_weights(4, 1e4), torch.full((4,), 0.25))
    assert gaussian_layer_weights(1, 1.0).tolist() == [1.0]
    with pytest.raises(ValueError):
        gaussian_layer_weights(3, 0.0)


def test_layer_groups_end_before_the_last_layer():
    assert layer_groups(12, 2, 4) == [[3, 4, 5, 6], [7, 8, 9, 10]]
    assert layer_groups(24, 4, 4)[0] == [7, 8, 9, 10] and layer_groups(24, 4, 4)[-1] == [19, 20, 21, 22]
    assert layer_groups(2, 1, 1) == [[0]] and layer_groups(12, 0, 4) == []


def test_hierarchical_heads_weight_the_cls_states_then_normalise_and_project():
    model = _tiny_clip()
    norm, projection = model.vision_model.post_layernorm, model.visual_projection
    heads = HierarchicalHeads([[0, 1]], torch.tensor([0.25, 0.75]), norm, projection)
    assert heads.projections[0].weight is not projection.weight  # copies, trained separately
    assert torch.equal(heads.projections[0].weight, projection.weight)
    states = [torch.randn(3, 32), torch.randn(3, 32)]
    (features,) = heads(states)
    torch.testing.assert_close(features, projection(norm(0.25 * states[0] + 0.75 * states[1])))
    random = HierarchicalHeads([[0, 1]], torch.tensor([0.5, 0.5]), norm, projection, init="random")
    assert not torch.equal(random.projections[0].weight, projection.weight)


# --- losses ---------------------------------------------------------------------------------------------


def _reference_infonce(images: torch.Tensor, texts: torch.Tensor, scale: float, smoothing: float) -> torch.Tensor:
    """Symmetric cross-entropy with label smoothing, written out."""
    images, texts = F.normalize(images, dim=-1), F.normalize(texts, dim=-1)
    batch = images.shape[0]

    def direction(logits: torch.Tensor) -> torch.Tensor:
        log_p = logits.log_softmax(dim=-1)
        target = torch.full_like(log_p, smoothing / batch) + torch.eye(batch) * (1 - smoothing)
        return -(target * log_p).sum(dim=-1).mean()

    logits = scale * images @ texts.T
    return (direction(logits) + direction(logits.T)) / 2


def test_each_fix_clip_loss_term_matches_a_reference_computation():
    generator = torch.Generator().manual_seed(0)
    image, masked, long, short, h0, h1 = (torch.randn(6, 8, generator=generator) for _ in range(6))
    parts = fix_clip_loss(image, masked, long, short, [h0, h1], 10.0, hierarchy_weight=0.3, gather=False)
    reference = lambda a, b: _reference_infonce(a, b, 10.0, 0.1)  # noqa: E731
    torch.testing.assert_close(parts.long, reference(image, long))
    torch.testing.assert_close(parts.short, reference(masked, short))  # short captions vs the MASKED image
    torch.testing.assert_close(parts.hierarchy[0], reference(h0, long))
    torch.testing.assert_close(parts.hierarchy[1], reference(h1, long))
    expected = reference(image, long) + reference(masked, short) + 0.3 * (reference(h0, long) + reference(h1, long))
    torch.testing.assert_close(parts.total, expected)  # Σ ω_i·L_i + L_short + L_long
    weighted = fix_clip_loss(image, masked, long, short, [], 10.0, hierarchy_weight=0.3, short_weight=0.25)
    torch.testing.assert_close(weighted.total, 2 * (0.25 * parts.short + 0.75 * parts.long))
    assert set(parts.logged()) == {"loss", "loss_long", "loss_short", "loss_hier_0", "loss_hier_1"}


def test_recipe_step_loss_fix_clip_and_the_unchanged_two_caption_default():
    generator = torch.Generator().manual_seed(1)
    image, masked, long, short, hier = (torch.randn(5, 8, generator=generator) for _ in range(5))
    out = TwoCaptionOutput(image, long, short, torch.zeros(5, 1, 1), torch.tensor(10.0), masked, (hier,))
    logged = FIX_CLIP.step_loss(out)
    expected = fix_clip_loss(image, masked, long, short, [hier], 10.0, hierarchy_weight=0.1)
    assert torch.equal(logged["loss"], expected.total) and torch.equal(logged["loss_hier_0"], expected.hierarchy[0])
    debias = get_recipe("debias")
    parts = debias.loss(image, long, short, torch.tensor(10.0))
    assert {k: v.item() for k, v in debias.step_loss(out).items()} == parts.as_floats()
    with pytest.raises(ValueError, match="masked image branch"):
        FIX_CLIP.step_loss(out._replace(short_image_features=None))


def test_two_caption_module_with_the_image_side_trains_every_extra():
    model = _tiny_clip()
    side = FixClipImageSide(model, TINY_FIX)
    module = TwoCaptionCLIP(model, side)
    names = [name for name, _ in module.named_parameters()]
    assert names[: len(list(model.parameters()))] == ["clip." + n for n, _ in model.named_parameters()]
    assert {"image_side.mask_token", "image_side.prompts"} <= set(names)
    ids = torch.randint(1, 49000, (3, 77))
    inputs = side.batch_inputs(3, generator=torch.Generator().manual_seed(0))
    out = module(_pixels(), ids, ids, **inputs)
    FIX_CLIP.step_loss(out)["loss"].backward()
    for name in ("mask_token", "prompts", "hierarchy.projections.0.weight", "hierarchy.norms.0.weight"):
        assert side.get_parameter(name).grad.abs().amax() > 0, name
    with pytest.raises(ValueError, match="no image side"):
        TwoCaptionCLIP(model)(_pixels(), ids, ids, **inputs)


# --- training runs ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(request) -> tuple[Path, Path]:
    """test_train_loop's tiny source model folder and captioned shapes data."""
    return request.getfixturevalue("source_dir"), request.getfixturevalue("data_dir")


@pytest.fixture(scope="module")
def fix_run(tmp_path_factory, tiny):
    """``python -m train_encoder train --recipe fix-clip`` on the tiny model, offline, 20 steps."""
    source, data = tiny
    output = tmp_path_factory.mktemp("fix") / "out"
    argv = [sys.executable, "-m", "train_encoder", "train", "--config", "tiny", "--recipe", "fix-clip",
            "--model", str(source), "--train-data", str(data / "captions.jsonl"),
            "--image-root", str(data / "images"), "--output-dir", str(output), "--max-steps", "20",
            "--fix-clip.groups", "1", "--set", "fix_clip.group_size=1", "--set", "fix_clip={prompts: 4}"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exported:" in done.stdout
    return output


def test_end_to_end_fix_clip_run_learns_and_checkpoints_its_extras(fix_run, tiny):
    source = tiny[0]
    metrics = _metrics(fix_run)
    assert [m["step"] for m in metrics] == list(range(1, 21))
    assert {"loss", "loss_long", "loss_short", "loss_hier_0"} <= metrics[0].keys()
    losses = [m["loss"] for m in metrics]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    for m in metrics:  # 2·(0.5·short + 0.5·long) + 0.1·hier
        assert m["loss"] == pytest.approx(m["loss_long"] + m["loss_short"] + 0.1 * m["loss_hier_0"], rel=1e-5)
    checkpoint = fix_run / "checkpoints" / "step-20"
    assert read_checkpoint_metadata(checkpoint)["recipe"] == "fix-clip"
    extras = load_file(checkpoint / EXTRAS_FILE)
    assert extras["prompts"].shape == (2, 4, 32) and extras["mask_token"].shape == (32,)
    assert extras["mask_token"].abs().amax() > 0  # trained away from its zero start
    assert {"hierarchy.norms.0.weight", "hierarchy.projections.0.weight"} <= extras.keys()
    weights = load_file(checkpoint / "model" / "model.safetensors")
    assert not [key for key in weights if "mask_token" in key or "prompts" in key]  # the CLIPModel stays plain
    start = load_file(source / "model.safetensors")["text_model.embeddings.position_embedding.weight"]
    table = weights["text_model.embeddings.position_embedding.weight"]
    assert table.shape == (248, 32) and torch.equal(table[:20], stretch_position_table(start, keep=20, ratio=4)[:20])


def test_fix_clip_export_is_the_same_hf_text_encoder_as_the_other_recipes(fix_run):
    final = fix_run / "final"
    assert torch.equal(load_file(final / EXTRAS_FILE)["prompts"], load_file(
        fix_run / "checkpoints" / "step-20" / EXTRAS_FILE)["prompts"])  # fmt: skip
    meta = json.loads((final / "text_encoder" / "train_encoder_export.json").read_text())
    assert (meta["recipe"], meta["positions"]) == ("fix-clip", 248)
    loaded = load_text_encoder(final / "text_encoder")
    assert type(loaded.text_encoder).__name__ == "CLIPTextModelWithProjection" and loaded.context_length == 248
    clip = CLIPModel.from_pretrained(final / "clip")
    ids = torch.tensor([[49406, 320, 1929, 49407] + [0] * 244])
    with torch.no_grad():
        expected = clip.get_text_features(input_ids=ids)
        torch.testing.assert_close(
            loaded.text_encoder(input_ids=ids).text_embeds, getattr(expected, "pooler_output", expected)
        )
    assert main(["export", str(fix_run), "--output", str(fix_run.parent / "exported")]) == 0
    assert (fix_run.parent / "exported" / EXTRAS_FILE).is_file()


def test_resume_restores_the_extras_exactly(tmp_path, tiny):
    source, data = tiny
    options = dict(max_steps=5, batch_size=4, checkpoint_every=2, keep_checkpoints=0, export_final=False, **FIX)
    whole = train(_config(source, data, tmp_path / "whole", **options))

    class Killed(Exception):
        pass

    def kill_at_3(state):
        if state.step == 3:
            raise Killed

    interrupted = _config(source, data, tmp_path / "cut", **options)
    with pytest.raises(Killed):
        train(interrupted, on_step=kill_at_3)
    # the checkpoint's config.yaml as the previous release wrote it (flat fix_clip_* keys): it still resumes exactly
    saved = tmp_path / "cut" / "checkpoints" / "step-2" / "config.yaml"
    saved.write_text(yaml.safe_dump(_previous_release_layout(yaml.safe_load(saved.read_text()))), encoding="utf-8")
    with pytest.warns(DeprecationWarning):
        legacy_config = load_config(saved)
    assert legacy_config == interrupted
    resumed = train(legacy_config, resume="latest")  # from step 2
    for name in ("model/model.safetensors", EXTRAS_FILE):
        a, b = load_file(whole.checkpoint / name), load_file(resumed.checkpoint / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert [m["loss"] for m in _metrics(tmp_path / "cut")] == [m["loss"] for m in _metrics(tmp_path / "whole")]
    other = interrupted.replace(recipe="long-clip", fix_clip=None)
    with pytest.raises(CheckpointError, match=r"recipe_extras.safetensors \(recipe 'fix-clip'\) but this run's"):
        train(other, resume="latest")


def test_eval_cli_compares_fix_clip_long_clip_and_debias_side_by_side(fix_run, tmp_path, tiny):
    source, data = tiny
    exports = {"fix-clip": fix_run / "final" / "clip"}
    for recipe in ("long-clip", "debias"):
        result = train(_config(source, data, tmp_path / recipe, recipe=recipe, max_steps=4))
        exports[recipe] = result.export_dir / "clip"
    urban = tmp_path / "Urban1k"
    (urban / "image").mkdir(parents=True)
    (urban / "caption").mkdir()
    for index, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle")]):
        (urban / "image" / f"{index}.jpg").write_bytes((data / "images" / f"{colour}-{shape}.png").read_bytes())
        (urban / "caption" / f"{index}.txt").write_text(_caption(colour, shape))
    argv = ["eval", *[arg for name, path in exports.items() for arg in ("--model", f"{name}={path}")],
            "--dataset", f"urban1k={tmp_path}", "--num-workers", "0", "--reference", "none",
            "--probe", "full", "--probe", "first_only", "--output-dir", str(tmp_path / "eval")]  # fmt: skip
    assert main(argv) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())["results"]
    assert {(r["model"], r["caption_variant"]) for r in results} == {
        (m, p) for m in ("fix-clip", "long-clip", "debias") for p in ("full", "first_only")
    }
    table = (tmp_path / "eval" / "results.md").read_text()
    assert all(name in table for name in ("fix-clip", "long-clip", "debias"))
