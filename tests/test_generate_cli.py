"""`debias-diffusion generate`: images + sidecars, encoder swap, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest
from diffusers import StableDiffusionPipeline
from PIL import Image
from pipeline_builders import LONG_HEAD, SHORT_PROMPT, sd_components, tiny_text_encoder

from debias_diffusion.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny SD 1.x-style pipeline folder with a 77-token encoder, and a 248-token encoder folder."""
    root = tmp_path_factory.mktemp("models")
    StableDiffusionPipeline(**sd_components(77)).save_pretrained(root / "sd")
    tiny_text_encoder(248, seed=5).save_pretrained(root / "encoder")
    return root


def _generate(model_dir, output, *extra):
    base = [
        "generate",
        "--model",
        str(model_dir / "sd"),
        "--steps",
        "2",
        "--size",
        "16x16",
        "--output-dir",
        str(output),
    ]
    return main([*base, *extra])


def test_writes_images_and_sidecars_with_every_setting(model_dir, tmp_path, capsys):
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text(LONG_HEAD + "A blue sphere hides behind it.")
    code = _generate(model_dir, tmp_path / "out", f"@{prompt_file}", "--encoder", str(model_dir / "encoder"),
                     "--num-images", "2", "--seed", "7", "-n", "blurry")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for seed in (7, 8):
        assert Image.open(tmp_path / "out" / f"seed-{seed}.png").size == (16, 16)
        sidecar = json.loads((tmp_path / "out" / f"seed-{seed}.json").read_text())
        assert sidecar["seed"] == seed and sidecar["negative_prompt"] == "blurry" and sidecar["steps"] == 2
        assert sidecar["prompt"] == prompt_file.read_text() and sidecar["encoder_tokens"] == 246
        assert 77 < sidecar["prompt_tokens"] <= 246 and "truncated" not in sidecar
        assert sidecar["versions"]["diffusers"]


def test_model_encoder_truncation_is_recorded_and_outputs_are_kept(model_dir, tmp_path, capsys):
    assert _generate(model_dir, tmp_path, LONG_HEAD, "--encoder", "none") == 0
    sidecar = json.loads((tmp_path / "seed-0.json").read_text())
    assert sidecar["truncated"] and sidecar["encoder_tokens"] == 75 and sidecar["dropped_text"]
    assert _generate(model_dir, tmp_path, SHORT_PROMPT, "--encoder", "none") == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        ([SHORT_PROMPT, "--encoder", "none", "--size", "20x16"], "multiples of 8"),
        ([LONG_HEAD, "--encoder", "none", "--long-prompt", "error"], "long_prompt='truncate'"),
        ([SHORT_PROMPT, "--model", "nobody/not-cached-model"], "hf download nobody/not-cached-model"),
        ([SHORT_PROMPT, "--model", "missing-folder/x/y"], "neither a diffusers pipeline folder nor a Hub id"),
        ([SHORT_PROMPT, "--encoder", "nobody/no-encoder"], "hf download nobody/no-encoder"),
    ],
    ids=["size", "error-policy", "offline-model", "bad-model", "offline-encoder"],
)
def test_bad_input_fails_clearly_and_writes_nothing(model_dir, tmp_path, capsys, args, message):
    base = ["generate", "--model", str(model_dir / "sd"), "--steps", "1", "--output", str(tmp_path / "out")]
    assert main([*base, *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_unparseable_size_is_a_usage_error(model_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _generate(model_dir, tmp_path, SHORT_PROMPT, "--size", "big")
    assert exit_info.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err


def test_second_run_on_the_same_folder_is_refused_while_the_first_holds_it(model_dir, tmp_path, capsys):
    from debias_diffusion.output_lock import locked_output

    with locked_output(tmp_path / "out"):  # a first run, still writing
        assert _generate(model_dir, tmp_path / "out", SHORT_PROMPT, "--encoder", "none") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is in use by pid" in err
    assert not (tmp_path / "out").exists()
    assert _generate(model_dir, tmp_path / "out", SHORT_PROMPT, "--encoder", "none") == 0  # free again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "the lock file outlived the run"


def test_overwrite_replaces_only_when_asked(model_dir, tmp_path, capsys):
    assert _generate(model_dir, tmp_path, SHORT_PROMPT, "--encoder", "none", "--seed", "4") == 0
    (tmp_path / "seed-4.png").write_bytes(b"edited by hand")
    assert _generate(model_dir, tmp_path, SHORT_PROMPT, "--encoder", "none", "--seed", "3", "--num-images", "2") == 2
    assert "seed-4.png already exists" in capsys.readouterr().err
    assert (tmp_path / "seed-4.png").read_bytes() == b"edited by hand" and not (tmp_path / "seed-3.png").exists()
    assert _generate(model_dir, tmp_path, SHORT_PROMPT, "--encoder", "none", "--seed", "4", "--overwrite") == 0
    assert Image.open(tmp_path / "seed-4.png").size == (16, 16)


def test_full_disk_is_one_error_line_and_leaves_no_partial_image(model_dir, tmp_path, capsys, monkeypatch):
    import errno

    def full_disk(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("debias_diffusion.generation.atomic_save_image", full_disk)
    assert _generate(model_dir, tmp_path / "out", SHORT_PROMPT, "--encoder", "none") == 2
    last_line = capsys.readouterr().err.splitlines()[-1]  # after the progress bars
    assert (
        last_line
        == f"error: {tmp_path / 'out' / 'seed-0.png'}: no space left on the device; free some disk space or choose another output folder"
    )
    assert list(tmp_path.iterdir()) == [], "a partial image, an empty folder or the lock was left behind"
