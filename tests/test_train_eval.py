"""train_encoder.evaluation: recall, probes, dataset readers, embedding cache, loading, reports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from clip_builders import tiny_openai_clip
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from debias_diffusion.clip_embedding import encode_text_features, tokenize_captions
from debias_diffusion.clip_loading import load_clip_model
from debias_diffusion.errors import ModelNotFoundError
from debias_diffusion.image_preprocessing import ImagePreprocessing, image_transform
from debias_diffusion.sentences import split_sentences
from train_encoder.data.images import load_image
from train_encoder.evaluation import (
    DatasetFormatError,
    DatasetNotFoundError,
    EmbeddingCache,
    EvalSet,
    EvaluationResults,
    ResultRow,
    apply_caption_variant,
    cached_image_features,
    cached_text_features,
    encode_images,
    evaluate,
    get_caption_variant,
    read_coco,
    read_dci,
    read_docci,
    read_eval_set,
    read_flickr30k,
    read_results,
    read_sharegpt4v_1k,
    read_urban1k,
    results_markdown,
    retrieval_scores,
    similarity_retrieval_scores,
    write_report,
)
from train_encoder.evaluation.retrieval import image_to_text_ranks, text_to_image_ranks

KS = (1, 2, 3)


def _ranks(similarity: list[list[float]], targets: list[int]) -> tuple[list[int], list[int]]:
    """Ranks from a hand-made matrix: captions = its rows, and the identity as image embeddings."""
    sim = torch.tensor(similarity)
    eye = torch.eye(sim.shape[1])
    return (
        text_to_image_ranks(sim, eye, targets).tolist(),
        image_to_text_ranks(sim, eye, targets).tolist(),
    )


# --- recall -----------------------------------------------------------------------------------------


def test_recall_one_caption_per_image_hand_computed():
    sim = [
        [0.9, 0.1, 0.2],  # caption 0: its image is best            -> rank 0
        [0.8, 0.5, 0.1],  # caption 1: image 0 beats image 1         -> rank 1
        [0.3, 0.7, 0.6],  # caption 2: image 1 beats image 2         -> rank 1
    ]
    assert _ranks(sim, [0, 1, 2]) == ([0, 1, 1], [0, 1, 0])  # I2T image 1: caption 2 (0.7) beats caption 1 (0.5)
    scores = similarity_retrieval_scores(torch.tensor(sim), [0, 1, 2], ks=KS)
    assert scores.text_to_image == pytest.approx({1: 100 / 3, 2: 100.0, 3: 100.0})
    assert scores.image_to_text == pytest.approx({1: 200 / 3, 2: 100.0, 3: 100.0})
    assert scores.as_dict()["t2i"]["R@1"] == pytest.approx(100 / 3)


def test_recall_several_captions_per_image_hits_if_any_caption_is_in_top_k():
    sim = [  # columns: image 0, image 1
        [0.2, 0.9],  # caption 0 (image 0): rank 1
        [0.8, 0.1],  # caption 1 (image 0): rank 0
        [0.3, 0.4],  # caption 2 (image 1): rank 0
        [0.6, 0.5],  # caption 3 (image 1): rank 1
    ]
    targets = [0, 0, 1, 1]
    # image 0: best own caption is caption 1 (0.8), no other caption reaches it -> rank 0, although
    # its first caption (0.2) is last; image 1: best own caption 0.5, caption 0 (0.9) is above -> rank 1
    assert _ranks(sim, targets) == ([1, 0, 0, 1], [0, 1])
    scores = similarity_retrieval_scores(torch.tensor(sim), targets, ks=(1, 2))
    assert scores.text_to_image == pytest.approx({1: 50.0, 2: 100.0})
    assert scores.image_to_text == pytest.approx({1: 50.0, 2: 100.0})
    assert (scores.num_texts, scores.num_images) == (4, 2)


def test_ties_count_against_the_match():
    sim = [
        [0.5, 0.5, 0.1],  # caption 0 ties with image 1  -> rank 1
        [0.3, 0.3, 0.3],  # caption 1 ties with both     -> rank 2
        [0.0, 0.9, 0.9],  # caption 2 ties with image 1  -> rank 1
    ]
    assert _ranks(sim, [0, 1, 2]) == ([1, 2, 1], [0, 2, 0])
    scores = similarity_retrieval_scores(torch.tensor(sim), [0, 1, 2], ks=KS)
    assert scores.text_to_image == pytest.approx({1: 0.0, 2: 200 / 3, 3: 100.0})
    constant = similarity_retrieval_scores(torch.full((4, 4), 0.25), range(4), ks=(1, 4))
    assert constant.text_to_image == constant.image_to_text == {1: 0.0, 4: 100.0}


def test_a_tie_between_two_captions_of_the_same_image_is_not_a_miss():
    sim = [[0.7, 0.2], [0.7, 0.2], [0.1, 0.4]]
    assert _ranks(sim, [0, 0, 1]) == ([0, 0, 0], [0, 0])


@pytest.mark.parametrize("block_size", [1, 4, 1000])
def test_blocked_ranks_match_a_full_sort(block_size):
    generator = torch.Generator().manual_seed(0)
    text, image = torch.randn(37, 8, generator=generator), torch.randn(11, 8, generator=generator)
    targets = torch.cat([torch.arange(11), torch.randint(0, 11, (26,), generator=generator)])
    sim = text @ image.T
    t2i = [int((sim[t].argsort(descending=True) == targets[t]).nonzero()) for t in range(37)]
    i2t = []
    for i in range(11):
        order = sim[:, i].argsort(descending=True)
        i2t.append(int((targets[order] == i).nonzero()[0]))  # position of the first own caption
    assert text_to_image_ranks(text, image, targets, block_size=block_size).tolist() == t2i
    assert image_to_text_ranks(text, image, targets, block_size=block_size).tolist() == i2t
    from_embeddings = retrieval_scores(text, image, targets, block_size=block_size)
    assert from_embeddings == similarity_retrieval_scores(sim, targets, block_size=block_size)
    assert from_embeddings.text_to_image[10] == pytest.approx(100 * sum(r < 10 for r in t2i) / 37)


def test_retrieval_rejects_uncaptioned_images_and_nan():
    with pytest.raises(ValueError, match="no caption"):
        similarity_retrieval_scores(torch.rand(2, 3), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        similarity_retrieval_scores(torch.tensor([[float("nan"), 0.0], [0.0, 1.0]]), [0, 1])
    with pytest.raises(ValueError, match="3 entries for 2 captions"):
        similarity_retrieval_scores(torch.rand(2, 2), [0, 1, 1])


# --- probes -----------------------------------------------------------------------------------------

CAPTION = "A red car is parked. It has four doors. The street is wet. A man walks by. Trees line the road."


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("full", CAPTION),
        ("filler_1", "This is a photo. A red car is parked. It has four doors."),
        ("filler_3", "This is a photo. This is a photo. This is a photo. A red car is parked. It has four doors."),
        ("first_2", "A red car is parked. It has four doors."),
        ("swap_2", "It has four doors. A red car is parked."),
        ("first_only", "A red car is parked."),
        (
            "summary_at_4",
            "It has four doors. The street is wet. A man walks by. A red car is parked. Trees line the road.",
        ),
        ("no_summary", "It has four doors. The street is wet. A man walks by. Trees line the road."),
    ],
)
def test_probe_rewrites_captions(name, expected):
    assert get_caption_variant(name)(CAPTION) == expected


def test_filler_5_prepends_five_fillers():
    assert get_caption_variant("filler_5")("One. Two. Three.") == "This is a photo. " * 5 + "One. Two."


def test_probes_on_short_captions_and_abbreviations():
    assert get_caption_variant("summary_at_4")("A dog runs. It is brown.") == "It is brown. A dog runs."
    assert get_caption_variant("no_summary")("A dog runs.") == "A dog runs."
    assert get_caption_variant("filler_2")("A dog runs.") == "This is a photo. This is a photo. A dog runs."
    text = "Mr. Smith stands by a U.S. flag. He waves. It is sunny."
    assert get_caption_variant("first_only")(text) == "Mr. Smith stands by a U.S. flag."
    assert get_caption_variant("swap_2")(text) == "He waves. Mr. Smith stands by a U.S. flag."


def test_shuffled_probe_is_seeded_and_keeps_the_sentences():
    caption = "One. Two. Three. Four. Five. Six."
    first = get_caption_variant("shuffled", seed=0)
    assert first.variant == "shuffled@seed0"
    assert first(caption) == get_caption_variant("shuffled", seed=0)(caption)
    assert sorted(split_sentences(first(caption))) == sorted(split_sentences(caption))
    assert len({get_caption_variant("shuffled", seed=s)(caption) for s in range(8)}) > 1


def test_apply_probe_keeps_images_and_unknown_names_are_refused(tmp_path):
    eval_set = EvalSet("toy", (tmp_path / "a.jpg", tmp_path / "b.jpg"), (CAPTION, "Solo. Duo."), (0, 1))
    probed = apply_caption_variant(eval_set, get_caption_variant("swap_2"))
    assert probed.captions == ("It has four doors. A red car is parked.", "Duo. Solo.")
    assert (probed.image_paths, probed.caption_to_image, probed.variant) == (eval_set.image_paths, (0, 1), "swap_2")
    with pytest.raises(ValueError, match="first_2"):
        get_caption_variant("first_three")


# --- dataset readers --------------------------------------------------------------------------------


def _image(path: Path, size=(40, 30), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=generator, dtype=torch.uint8)
    Image.frombytes("RGB", size, bytes(pixels.flatten().tolist())).save(path)
    return path


def _urban1k(root: Path) -> Path:
    (root / "Urban1k" / "caption").mkdir(parents=True)
    for seed, stem in enumerate(["10", "2", "1"]):
        _image(root / "Urban1k" / "image" / f"{stem}.jpg", seed=seed)
        (root / "Urban1k" / "caption" / f"{stem}.txt").write_text(f"Caption  {stem}.\nSecond line {stem}.\n")
    return root


def test_urban1k_pairs_by_stem_in_natural_order(tmp_path):
    eval_set = read_urban1k(_urban1k(tmp_path))
    assert [p.name for p in eval_set.image_paths] == ["1.jpg", "2.jpg", "10.jpg"]
    assert eval_set.captions == (
        "Caption 1. Second line 1.",
        "Caption 2. Second line 2.",
        "Caption 10. Second line 10.",
    )
    assert (eval_set.name, eval_set.caption_to_image) == ("urban1k", (0, 1, 2))
    assert read_urban1k(tmp_path / "Urban1k").captions == eval_set.captions  # the Urban1k folder itself


def test_urban1k_missing_folder_and_unpaired_stems(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Urban1k/image/<stem>.jpg") as info:
        read_urban1k(tmp_path)
    assert str(tmp_path / "image") in str(info.value)
    _urban1k(tmp_path)
    (tmp_path / "Urban1k" / "caption" / "7.txt").write_text("orphan")
    with pytest.raises(DatasetFormatError, match=r"captions without image e\.g\. \['7'\]"):
        read_urban1k(tmp_path)


def test_docci_reads_the_test_split_only(tmp_path):
    lines = [
        {"example_id": "train_01", "split": "train", "image_file": "train_01.jpg", "description": "Train."},
        {"example_id": "test_01", "split": "test", "image_file": "test_01.jpg", "description": "First test."},
        {"example_id": "qual_01", "split": "qual_test", "image_file": "qual_01.jpg", "description": "Qual."},
        {"example_id": "test_02", "split": "test", "image_file": "test_02.jpg", "description": "Second test."},
    ]
    (tmp_path / "docci_descriptions.jsonlines").write_text("".join(json.dumps(x) + "\n" for x in lines))
    _image(tmp_path / "images" / "test_01.jpg")
    with pytest.raises(DatasetNotFoundError, match="test_02.jpg"):
        read_docci(tmp_path)
    _image(tmp_path / "images" / "test_02.jpg")
    eval_set = read_docci(tmp_path)
    assert eval_set.captions == ("First test.", "Second test.")
    assert [p.name for p in eval_set.image_paths] == ["test_01.jpg", "test_02.jpg"]
    with pytest.raises(DatasetNotFoundError, match="docci_descriptions.jsonlines"):
        read_docci(tmp_path / "elsewhere")


def test_coco_keeps_five_captions_per_image_in_id_order(tmp_path):
    data = {
        "images": [{"id": 9, "file_name": "b.jpg"}, {"id": 3, "file_name": "a.jpg"}],
        "annotations": [{"id": 100 + i, "image_id": 9, "caption": f"b{i}"} for i in range(6)]
        + [{"id": 200 + i, "image_id": 3, "caption": f" a{i} "} for i in range(5)],
    }
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "captions_val2017.json").write_text(json.dumps(data))
    with pytest.raises(DatasetNotFoundError, match="val2017"):
        read_coco(tmp_path)
    _image(tmp_path / "val2017" / "a.jpg")
    _image(tmp_path / "val2017" / "b.jpg")
    eval_set = read_coco(tmp_path)
    assert [p.name for p in eval_set.image_paths] == ["a.jpg", "b.jpg"]
    assert eval_set.captions == ("a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4")
    assert eval_set.caption_to_image == (0,) * 5 + (1,) * 5
    with pytest.raises(DatasetNotFoundError, match="captions_val2017.json"):
        read_coco(tmp_path / "nowhere")


def test_dci_full_and_long_captions(tmp_path):
    base = tmp_path / "densely_captioned_images"
    for index, name in enumerate(["sa_2.jpg", "sa_1.jpg"]):
        record = {
            "image": name,
            "short_caption": f"Short {index}. ",
            "extra_caption": f"Extra {index}.",
            "mask_data": {},
        }
        (base / "annotations").mkdir(parents=True, exist_ok=True)
        (base / "annotations" / f"{index}.json").write_text(json.dumps(record))
        _image(base / "photos" / name)
    full = read_dci(tmp_path)
    assert full.captions == ("Short 0. Extra 0.", "Short 1. Extra 1.")
    assert [p.name for p in full.image_paths] == ["sa_2.jpg", "sa_1.jpg"]
    long = read_eval_set("long-dci", base)
    assert (long.name, long.captions) == ("long-dci", ("Extra 0.", "Extra 1."))


def test_sharegpt4v_1k_takes_the_first_entries(tmp_path):
    entries = [
        {
            "id": str(i),
            "image": f"coco/{i}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe."},
                {"from": "gpt", "value": f"Entry {i}.\nMore {i}."},
            ],
        }
        for i in range(3)
    ]
    (tmp_path / "share-captioner_coco_lcs_sam_1246k_1107.json").write_text(json.dumps(entries))
    for i in range(2):
        _image(tmp_path / "coco" / f"{i}.jpg")
    eval_set = read_sharegpt4v_1k(tmp_path, count=2)
    assert eval_set.captions == ("Entry 0. More 0.", "Entry 1. More 1.")
    with pytest.raises(DatasetFormatError, match="at least 4 entries"):
        read_sharegpt4v_1k(tmp_path, count=4)


def test_flickr30k_karpathy_test_split(tmp_path):
    images = [
        {"filename": "t.jpg", "split": "train", "sentences": [{"raw": "train"}]},
        {"filename": "x.jpg", "split": "test", "sentences": [{"raw": f"x{i}"} for i in range(6)]},
        {"filename": "y.jpg", "split": "test", "sentences": [{"raw": f"y{i}"} for i in range(5)]},
    ]
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps({"images": images, "dataset": "flickr30k"}))
    _image(tmp_path / "flickr30k-images" / "x.jpg")
    _image(tmp_path / "flickr30k-images" / "y.jpg")
    eval_set = read_flickr30k(tmp_path)
    assert eval_set.captions == tuple(f"x{i}" for i in range(5)) + tuple(f"y{i}" for i in range(5))
    assert eval_set.caption_to_image == (0,) * 5 + (1,) * 5
    with pytest.raises(ValueError, match="unknown evaluation set"):
        read_eval_set("imagenet", tmp_path)


# --- model, embeddings, cache -----------------------------------------------------------------------


def tiny_clip_model(seed: int = 0, context_length: int = 77) -> CLIPModel:
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=context_length,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        projection_dim=16,
    )
    return CLIPModel(config).eval()


class _Calls:
    """Counts forward passes of the text and vision towers."""

    def __init__(self, model: CLIPModel):
        self.text = self.vision = 0
        model.text_model.register_forward_hook(lambda *_: self._add("text"))
        model.vision_model.register_forward_hook(lambda *_: self._add("vision"))

    def _add(self, tower: str) -> None:
        setattr(self, tower, getattr(self, tower) + 1)


def test_preprocessing_resizes_short_side_and_crops_the_center():
    image = Image.new("RGB", (64, 32), (255, 0, 0))
    image.paste((0, 0, 255), (32, 0, 64, 32))  # right half blue
    spec = ImagePreprocessing(32, mean=(0.5, 0.25, 0.5), std=(0.5, 0.25, 0.5))
    pixels = image_transform(spec)(image)
    assert pixels.shape == (3, 32, 32)
    torch.testing.assert_close(pixels[:, 5, 0], torch.tensor([1.0, -1.0, -1.0]))  # red left of center
    torch.testing.assert_close(pixels[:, 5, 31], torch.tensor([-1.0, -1.0, 1.0]))  # blue right of center
    tall = image_transform(ImagePreprocessing(10))(Image.new("RGB", (20, 80), (0, 255, 0)))
    assert tall.shape == (3, 10, 10)


def test_text_embeddings_match_single_caption_encoding():
    clip = load_clip_model(tiny_clip_model())
    long_caption = "a very long caption about a cat " * 20
    captions = ["a cat", long_caption, "a dog on a red mat", "sky"]
    ids = tokenize_captions(captions, 77)
    assert len(ids[1]) == 77 and ids[1][0] == 49406 and ids[1][-1] == 49407  # truncated, EOT kept
    embeddings = encode_text_features(clip, captions, batch_size=3, progress=False)
    assert embeddings.shape == (4, 16)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(4))
    for index, caption_ids in enumerate(ids):
        with torch.no_grad():
            out = clip.model.get_text_features(input_ids=torch.tensor([caption_ids]))
        single = getattr(out, "pooler_output", out)[0]
        torch.testing.assert_close(embeddings[index], single / single.norm(), atol=1e-5, rtol=0)


def test_image_embeddings_match_single_image_encoding(tmp_path):
    clip = load_clip_model(tiny_clip_model())
    paths = [_image(tmp_path / f"{i}.png", size=(40 + i, 30), seed=i) for i in range(3)]
    embeddings = encode_images(clip, paths, batch_size=2, num_workers=2, progress=False)
    for index, path in enumerate(paths):
        with torch.no_grad():
            out = clip.model.get_image_features(
                pixel_values=image_transform(clip.preprocessing)(load_image(path))[None]
            )
        single = getattr(out, "pooler_output", out)[0]
        torch.testing.assert_close(embeddings[index], single / single.norm(), atol=1e-5, rtol=0)


def test_embedding_cache_hit_skips_the_model(tmp_path):
    eval_set = read_urban1k(_urban1k(tmp_path / "data"))
    model = tiny_clip_model()
    calls = _Calls(model)
    clip = load_clip_model(model)
    cache_dir = tmp_path / "cache"
    texts = cached_text_features(clip, eval_set, cache=EmbeddingCache(cache_dir), progress=False)
    images = cached_image_features(clip, eval_set, cache=EmbeddingCache(cache_dir), progress=False)
    assert (calls.text, calls.vision) == (1, 1)
    files = sorted(p.name for p in cache_dir.rglob("*") if p.is_file())
    assert len(files) == 2 and all(name.endswith(".safetensors") for name in files)
    assert any(name.startswith("urban1k--full--text-77--") for name in files)

    again = EmbeddingCache(cache_dir)
    torch.testing.assert_close(cached_text_features(clip, eval_set, cache=again, progress=False), texts, atol=0, rtol=0)
    torch.testing.assert_close(
        cached_image_features(clip, eval_set, cache=again, progress=False), images, atol=0, rtol=0
    )
    assert (calls.text, calls.vision) == (1, 1)

    cached_text_features(
        clip, apply_caption_variant(eval_set, get_caption_variant("first_only")), cache=again, progress=False
    )
    assert calls.text == 2  # another caption variant is a miss

    other = load_clip_model(tiny_clip_model(seed=1))
    assert other.identity != clip.identity
    assert not torch.equal(cached_text_features(other, eval_set, cache=again, progress=False), texts)


def test_corrupt_cache_file_is_recomputed(tmp_path):
    eval_set = read_urban1k(_urban1k(tmp_path / "data"))
    model = tiny_clip_model()
    calls = _Calls(model)
    clip = load_clip_model(model)
    cache = EmbeddingCache(tmp_path / "cache")
    first = cached_text_features(clip, eval_set, cache=cache, progress=False)
    next(Path(tmp_path / "cache").rglob("*.safetensors")).write_bytes(b"garbage")
    torch.testing.assert_close(cached_text_features(clip, eval_set, cache=cache, progress=False), first)
    assert calls.text == 2


def test_load_clip_model_from_folder_file_and_open_clip(tmp_path):
    model = tiny_clip_model()
    in_memory = load_clip_model(model)
    model.save_pretrained(tmp_path / "hf")
    from_folder = load_clip_model(tmp_path / "hf")
    assert from_folder.identity == in_memory.identity and from_folder.context_length == 77
    (tmp_path / "hf" / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": [0.5] * 3, "image_std": [0.2] * 3})
    )
    with_config = load_clip_model(tmp_path / "hf")
    assert with_config.preprocessing == ImagePreprocessing(32, (0.5,) * 3, (0.2,) * 3)
    assert with_config.identity != in_memory.identity  # preprocessing is part of the identity
    stretched = load_clip_model(tmp_path / "hf", stretch_to=248)
    assert stretched.context_length == 248 and stretched.model.config.text_config.max_position_embeddings == 248

    reference = tiny_openai_clip()
    torch.save(reference.state_dict(), tmp_path / "tiny.pt")
    from_file = load_clip_model(tmp_path / "tiny.pt", num_heads=2)
    assert isinstance(from_file.model, CLIPModel)
    assert from_file.identity == load_clip_model(reference).identity
    with torch.no_grad():
        pixels = torch.randn(2, 3, 32, 32)
        expected = reference.encode_image(pixels)
        got = from_file.model.get_image_features(pixel_values=pixels)
    torch.testing.assert_close(getattr(got, "pooler_output", got), expected, atol=1e-5, rtol=0)


def test_load_clip_model_hub_id_offline_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE"):
        load_clip_model("nobody-here/no-such-clip-model")


# --- reports and evaluate ---------------------------------------------------------------------------


def _row(model: str, dataset: str, variant: str, t2i: float, i2t: float) -> ResultRow:
    return ResultRow(model, dataset, variant, 10, 50, {"R@1": t2i, "R@5": 99.0}, {"R@1": i2t, "R@5": 98.0})


def test_markdown_table_puts_checkpoints_side_by_side():
    results = EvaluationResults(
        models={"base": {"source": "a"}, "debias": {"source": "b"}},
        rows=[
            _row("base", "docci", "full", 78.6, 66.5),
            _row("debias", "docci", "full", 85.64, 85.2),
            _row("base", "docci", "first_2", 40.0, 41.25),
        ],
    )
    assert results_markdown(results) == (
        "| dataset | caption_variant | base T2I R@1 | base I2T R@1 | debias T2I R@1 | debias I2T R@1 |\n"
        "| --- | --- | ---: | ---: | ---: | ---: |\n"
        "| docci | full | 78.6 | 66.5 | 85.6 | 85.2 |\n"
        "| docci | first_2 | 40.0 | 41.2 | - | - |\n"
    )
    assert (
        results_markdown(results, metrics=["i2t/R@5"]).splitlines()[0]
        == "| dataset | caption_variant | base I2T R@5 | debias I2T R@5 |"
    )


def test_write_report_json_shape_and_round_trip(tmp_path):
    results = EvaluationResults(
        {"base": {"source": "a", "identity": "x", "context_length": 77}}, [_row("base", "coco", "full", 1.0, 2.0)]
    )
    json_path, md_path = write_report(results, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["format"] == "train_encoder.evaluation/2"
    assert data["models"] == {"base": {"source": "a", "identity": "x", "context_length": 77}}
    assert data["results"] == [
        {
            "model": "base",
            "dataset": "coco",
            "caption_variant": "full",
            "num_images": 10,
            "num_texts": 50,
            "t2i": {"R@1": 1.0, "R@5": 99.0},
            "i2t": {"R@1": 2.0, "R@5": 98.0},
        }
    ]
    assert read_results(json_path) == results
    assert md_path.read_text() == results_markdown(results)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["results.json", "results.md"]


def test_results_of_format_1_still_read_with_probe_as_the_caption_variant(tmp_path):
    row = {"model": "base", "dataset": "coco", "probe": "first_only", "num_images": 10, "num_texts": 50,
           "t2i": {"R@1": 1.0, "R@5": 99.0}, "i2t": {"R@1": 2.0, "R@5": 98.0}}  # fmt: skip
    old = {"format": "train_encoder.evaluation/1", "models": {"base": {"source": "a"}}, "results": [row]}
    (tmp_path / "results.json").write_text(json.dumps(old))
    results = read_results(tmp_path / "results.json")
    assert results.rows == [_row("base", "coco", "first_only", 1.0, 2.0)]
    assert results.to_dict()["format"] == "train_encoder.evaluation/2"
    assert (
        results.to_dict()["results"][0]["caption_variant"] == "first_only"
        and "probe" not in results.to_dict()["results"][0]
    )
    with pytest.warns(DeprecationWarning, match=r"ResultRow\.probe is deprecated.*use caption_variant"):
        assert results.rows[0].probe == "first_only"
    with pytest.raises(ValueError, match="not an evaluation results file.*train_encoder.evaluation/9"):
        EvaluationResults.from_dict({**old, "format": "train_encoder.evaluation/9"})


def test_evaluate_runs_every_model_dataset_and_probe(tmp_path):
    eval_set = read_urban1k(_urban1k(tmp_path / "data"))
    models = {"a": tiny_clip_model(0), "b": tiny_clip_model(1)}
    with pytest.raises(ValueError, match="unknown caption variant"):
        evaluate(models, [eval_set], ["full", "nope"])
    results = evaluate(
        models,
        [eval_set],
        ["full", "first_only"],
        batch_size=2,
        cache_dir=tmp_path / "cache",
        output_dir=tmp_path / "out",
        ks=(1, 2),
        progress=False,
    )
    assert [(r.model, r.dataset, r.caption_variant) for r in results.rows] == [
        ("a", "urban1k", "full"),
        ("a", "urban1k", "first_only"),
        ("b", "urban1k", "full"),
        ("b", "urban1k", "first_only"),
    ]
    assert set(results.models) == {"a", "b"} and results.models["a"]["context_length"] == 77
    clip = load_clip_model(models["b"])
    probed = apply_caption_variant(eval_set, get_caption_variant("first_only"))
    expected = retrieval_scores(
        encode_text_features(clip, probed.captions, progress=False),
        encode_images(clip, eval_set.image_paths, progress=False),
        probed.caption_to_image,
        ks=(1, 2),
    ).as_dict()
    assert results.rows[3].t2i == pytest.approx(expected["t2i"])
    assert results.rows[3].i2t == pytest.approx(expected["i2t"])
    assert (results.rows[3].num_images, results.rows[3].num_texts) == (3, 3)
    assert read_results(tmp_path / "out" / "results.json") == results
    header = (tmp_path / "out" / "results.md").read_text().splitlines()[0]
    assert header == "| dataset | caption_variant | a T2I R@1 | a I2T R@1 | b T2I R@1 | b I2T R@1 |"
