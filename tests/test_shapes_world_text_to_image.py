"""The shapes world's text-to-image model retrains (reduced) and learns; runs resume and continue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pipeline_builders import tiny_text_encoder

from debias_diffusion import DeBiasStableDiffusionPipeline
from debias_diffusion.shapes_world import SceneConfig, export_dataset
from debias_diffusion.tokenization import build_clip_tokenizer


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("t2i")
    config = SceneConfig(min_objects=2, max_objects=3)
    export_dataset(root / "data", 96, size=32, seed=0, config=config, progress=False)  # 32 px: a quarter of the work
    encoder = tiny_text_encoder(77)
    encoder.save_pretrained(root / "encoder")
    build_clip_tokenizer(context_length=77).save_pretrained(root / "encoder")
    return root / "data", root / "encoder"


def _run(script, data: Path, encoder: Path, output: Path, *extra: str) -> dict:
    script.main(["--data", str(data), "--encoder", str(encoder), "--output", str(output), "--vae-steps", "60",
                 "--unet-steps", "60", "--batch-size", "16", "--checkpoint-every", "40", "--threads", "1", *extra])  # fmt: skip
    return json.loads(output.with_name(output.name + "-train").joinpath("training_summary.json").read_text())


@pytest.mark.usefixtures("single_torch_thread")
def test_reduced_text_to_image_training_learns_and_exports_a_pipeline(world, tmp_path, example_script):
    script = example_script("train_text_to_image")
    summary = _run(script, *world, tmp_path / "pipeline")
    assert summary["vae_steps"] == 60 and summary["unet_steps"] == 60
    assert summary["vae_reconstruction_loss"] < 0.6 * summary["vae_first_loss"], summary
    assert summary["unet_weighted_epsilon_mse"] < 0.8 * summary["unet_first_loss"], summary

    pipe = DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / "pipeline", torch_dtype=torch.float32)
    assert pipe.unet.dtype == torch.float32 and pipe.vae.config.scaling_factor == pytest.approx(
        summary["scaling_factor"]
    )
    image = pipe("a red circle and a blue star", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator().manual_seed(0), output_type="np").images  # fmt: skip
    assert image.shape == (1, 64, 64, 3) and torch.isfinite(torch.from_numpy(image)).all()

    # a finished run asked for more steps continues from its EMA weights, without retraining the VAE
    more = _run(script, *world, tmp_path / "pipeline", "--unet-steps", "70")
    assert more["unet_steps"] == 70 and more["vae_steps"] == 60 and more["vae_first_loss"] == summary["vae_first_loss"]
    assert more["unet_weighted_epsilon_mse"] < summary["unet_first_loss"], more

    # --init-from: a second stage keeps the first stage's VAE and scale
    second = _run(script, *world, tmp_path / "stage2", "--init-from", str(tmp_path / "pipeline-train"),
                  "--caption-forms", "list", "--object-weight", "0", "--unet-steps", "10")  # fmt: skip
    assert (
        second["init_from"]["unet_steps"] == 70
        and second["unet_steps"] == 10
        and second["scaling_factor"] == summary["scaling_factor"]
    )
    stage1, stage2 = (DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / name) for name in ("pipeline", "stage2"))
    for a, b in zip(stage1.vae.state_dict().values(), stage2.vae.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # --init-from a saved pipeline folder (no work dir): its VAE, scale and UNet; captions of every length.
    # Its training summary (package_models.py ships it beside the weights) says how it was trained.
    (tmp_path / "pipeline" / "training_summary.json").write_text(json.dumps(more))
    third = _run(script, *world, tmp_path / "stage3", "--init-from", str(tmp_path / "pipeline"),
                 "--caption-forms", "summary,sentences,sentences", "--unet-steps", "5")  # fmt: skip
    assert third["init_from"]["pipeline"] == str(tmp_path / "pipeline") and third["init_from"]["unet_steps"] == 70
    assert third["unet_steps"] == 5 and third["scaling_factor"] == pytest.approx(summary["scaling_factor"], rel=1e-3)
    stage3 = DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / "stage3")
    for a, b in zip(stage1.vae.state_dict().values(), stage3.vae.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_caption_forms_and_object_cells(world, example_script):
    script = example_script("train_text_to_image")
    data, _ = world
    images, captions = script.load_dataset(data, 4, ("summary", "list"))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.uint8
    summary, listed = captions[0]
    assert summary.startswith("A picture of a large ") and " large " not in listed and not listed.startswith("A ")
    # the sentences form: a seeded subset of the long caption's sentences, neutral context mixed in
    from debias_diffusion.late_detail.context import NEUTRAL_CONTEXT
    from debias_diffusion.sentences import split_sentences

    _, both = script.load_dataset(data, 4, ("sentences", "sentences"))
    _, again = script.load_dataset(data, 4, ("sentences", "sentences"))
    assert both == again and any(first != second for first, second in both)  # seeded; repetitions differ
    rows = [json.loads(line) for line in (data / "captions.jsonl").read_text().splitlines()][:4]
    for row, variants in zip(rows, both, strict=True):
        allowed = set(split_sentences(row["caption"])) | set(NEUTRAL_CONTEXT)
        for caption in variants:
            sentences = split_sentences(caption)
            assert set(sentences) <= allowed and len(sentences) == len(set(sentences))
            assert set(sentences) - set(NEUTRAL_CONTEXT)  # at least one sentence about the scene
    # the named-sentences form: the same sampler, but the 77 tokens CLIP-77 reads name every object
    from debias_diffusion.shapes_world import read_scenes
    from debias_diffusion.tokenization import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(77)
    _, named = script.load_dataset(data, 4, ("named-sentences",))
    for row, scene, (caption,) in zip(rows, read_scenes(data / "scenes.jsonl")[:4], named, strict=True):
        ids = tokenizer(caption, truncation=True, max_length=77).input_ids
        window = " ".join(tokenizer.decode(ids, skip_special_tokens=True).lower().split())
        assert all(obj.phrase in window for obj in scene.objects), caption
        assert set(split_sentences(caption)) <= set(split_sentences(row["caption"])) | set(NEUTRAL_CONTEXT)
    cells = script.object_cells(images, 4)
    assert cells.shape == (4, 1, 8, 8) and 0 < cells.mean() < 0.5
    blank = torch.full((1, 3, 8, 8), 255, dtype=torch.uint8)
    blank[0, :, 4:, 4:] = torch.tensor([255, 0, 0])[:, None, None]  # a red quarter
    assert script.object_cells(blank, 4).flatten().tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--caption-forms", "summary,poem"], "unknown poem"),
        (["--object-weight", "-1"], "must be >= 0"),
        (["--init-from", "nowhere"], "neither a run's work dir (state.pt) nor a pipeline folder"),
    ],
)
def test_bad_options_are_refused_with_the_reason(argv, message, capsys, tmp_path, example_script):
    with pytest.raises(SystemExit):
        example_script("train_text_to_image").parse_args(
            ["--data", "d", "--encoder", "e", "--output", str(tmp_path / "o"), *argv]
        )
    assert message in capsys.readouterr().err


@pytest.mark.usefixtures("single_torch_thread")
def test_the_long_form_and_several_encoders(world, tmp_path, example_script):
    script = example_script("train_text_to_image")
    data, encoder_77 = world
    encoders = []
    for seed in (1, 2):  # two 248-token encoders of one width: one drawn per sample
        folder = tmp_path / f"encoder-248-{seed}"
        tiny_text_encoder(248, seed=seed).save_pretrained(folder)
        build_clip_tokenizer(context_length=248).save_pretrained(folder)
        encoders.append(folder)
    # long-named-sentences: captions up to the 248-token window that name every object within it,
    # objects first named past token 77 too
    from debias_diffusion.shapes_world import read_scenes

    tokenizer = build_clip_tokenizer(248)
    _, long = script.load_dataset(data, 12, ("long-named-sentences",), 248)
    first_mentions = []
    for scene, (caption,) in zip(read_scenes(data / "scenes.jsonl")[:12], long, strict=True):
        ids = tokenizer(caption, truncation=True, max_length=248).input_ids
        window = " ".join(tokenizer.decode(ids, skip_special_tokens=True).lower().split())
        assert all(obj.phrase in window for obj in scene.objects), caption
        text = caption.lower()
        first_mentions += [len(tokenizer(text[: text.index(obj.phrase)]).input_ids) - 1 for obj in scene.objects]
    assert max(first_mentions) > 77 and min(first_mentions) < 77
    assert script.encoders_window(encoders) == 248
    with pytest.raises(SystemExit, match="must share context length and width"):
        script.encoders_window([encoder_77, encoders[0]])
    with pytest.raises(SystemExit, match="--pipeline-encoder nowhere: no config.json"):
        script.encoders_window(encoders, Path("nowhere"))

    summary = _run(script, data, encoders[0], tmp_path / "long", "--encoder", str(encoders[1]), "--caption-forms",
                   "list,long-named-sentences", "--vae-steps", "5", "--unet-steps", "5")  # fmt: skip
    assert summary["unet_steps"] == 5
    work = tmp_path / "long-train"
    first, second = (torch.load(work / name, weights_only=True) for name in ("embeddings.pt", "embeddings-1.pt"))
    assert first["states"].shape[1:] == (248, 32) and not torch.equal(first["states"], second["states"])
    pipe = DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / "long")
    assert pipe.tokenizer.model_max_length == 248  # saved with the first encoder
    # the second encoder conditions samples too: another second encoder, another UNet
    other = tmp_path / "encoder-248-3"
    tiny_text_encoder(248, seed=3).save_pretrained(other)
    build_clip_tokenizer(context_length=248).save_pretrained(other)
    _run(script, data, encoders[0], tmp_path / "long-other", "--encoder", str(other), "--caption-forms",
         "list,long-named-sentences", "--vae-steps", "5", "--unet-steps", "5", "--pipeline-encoder", str(encoder_77))  # fmt: skip
    other_pipe = DeBiasStableDiffusionPipeline.from_pretrained(tmp_path / "long-other")
    assert other_pipe.tokenizer.model_max_length == 77  # --pipeline-encoder: saved with the 77-token encoder
    unet = other_pipe.unet
    assert any(
        not torch.equal(a, b) for a, b in zip(pipe.unet.state_dict().values(), unet.state_dict().values(), strict=True)
    )
