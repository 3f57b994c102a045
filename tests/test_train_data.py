"""train_encoder.data: annotation readers, transforms, bad-image handling, sampler, tar shards.

Everything is written by the tests into tmp_path: tiny PIL images, JSONL/CSV/ShareGPT4V files, tar shards.
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from debias_diffusion.image_preprocessing import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, ImagePreprocessing, image_transform
from train_encoder.data import (
    AnnotationError,
    BadSample,
    BadTrainingImageError,
    CaptionImageDataset,
    CaptionRecord,
    DataError,
    DataFileNotFoundError,
    ResumableSampler,
    Sample,
    ShardError,
    TarShardDataset,
    build_dataloader,
    collate_samples,
    expand_shards,
    load_image,
    read_annotations,
    read_csv,
    read_jsonl,
    read_sharegpt4v,
    split_shards,
    start_epoch,
)

SIZE = 8  # transform output side for the loader tests: small keeps them fast


# --- helpers ----------------------------------------------------------------------------------------


def image_bytes(color=(200, 100, 50), size=(12, 10), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def noisy_jpeg() -> bytes:
    """A JPEG large enough that half of it is a truncated (not merely short) file."""
    pixels = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_shards(folder: Path, num_shards: int, per_shard: int) -> list[str]:
    """Shards whose captions are the keys, so every sample can be identified."""
    paths = []
    for s in range(num_shards):
        members = []
        for i in range(per_shard):
            key = f"s{s}-{i:03d}"
            members += [(f"{key}.png", image_bytes((s * 20, i * 10, 0), size=(6, 6))), (f"{key}.txt", key.encode())]
        paths.append(str(write_tar(folder / f"shard-{s:03d}.tar", members)))
    return paths


@pytest.fixture
def image_folder(tmp_path) -> tuple[Path, list[CaptionRecord], set[int]]:
    """Ten records: seven good images, one missing, one truncated PNG, one text file named .jpg."""
    root = tmp_path / "images"
    root.mkdir()
    records, bad = [], set()
    for i in range(10):
        name = f"img{i}.png"
        if i == 3:
            bad.add(i)  # missing: never written
        elif i == 5:
            (root / name).write_bytes(truncated(image_bytes(size=(40, 40))))
            bad.add(i)
        elif i == 8:
            name = f"img{i}.jpg"
            (root / name).write_text("not an image")
            bad.add(i)
        else:
            (root / name).write_bytes(image_bytes((i * 20, 0, 0)))
        records.append(CaptionRecord(name, f"long {i}", f"short {i}" if i % 2 else None))
    return root, records, bad


# --- annotation formats ----------------------------------------------------------------------------


def test_read_jsonl_with_optional_short_caption_and_window(tmp_path):
    path = tmp_path / "train.jsonl"
    lines = [
        {"image": "a.jpg", "caption": "  A long caption. More.  ", "short_caption": "A short one."},
        {"image": "sub/b.png", "caption": "B caption."},
        {"image": "c.jpg", "caption": "C caption.", "short_caption": None},
        {"image": "d.jpg", "caption": "D caption.", "short_caption": "   "},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines[:2]) + "\n\n" + "\n".join(map(json.dumps, lines[2:])))
    records = read_jsonl(path)
    assert records == [
        CaptionRecord("a.jpg", "A long caption. More.", "A short one."),
        CaptionRecord("sub/b.png", "B caption.", None),
        CaptionRecord("c.jpg", "C caption.", None),
        CaptionRecord("d.jpg", "D caption.", None),
    ]
    assert read_jsonl(path, skip_first=1, limit=2) == records[1:3]
    renamed = tmp_path / "renamed.jsonl"
    renamed.write_text(json.dumps({"file": "x.jpg", "text": "X.", "brief": "x"}) + "\n")
    assert read_jsonl(renamed, image_key="file", caption_key="text", short_caption_key="brief") == [
        CaptionRecord("x.jpg", "X.", "x")
    ]


def test_read_csv_quoted_fields_custom_columns_and_tsv(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        'image,caption,short_caption\na.jpg,"A dog, a cat.\nOn two lines.",A dog.\nb.jpg,B caption.,\n',
        encoding="utf-8",
    )
    assert read_csv(path) == [
        CaptionRecord("a.jpg", "A dog, a cat.\nOn two lines.", "A dog."),
        CaptionRecord("b.jpg", "B caption.", None),
    ]
    custom = tmp_path / "custom.csv"
    custom.write_text("filepath,title\nx.jpg,X caption.\ny.jpg,Y caption.\n")  # no short-caption column at all
    assert read_csv(custom, image_column="filepath", caption_column="title", skip_first=1) == [
        CaptionRecord("y.jpg", "Y caption.", None)
    ]
    tsv = tmp_path / "train.tsv"
    tsv.write_text("image\tcaption\na.jpg\tWith, commas.\n")
    assert read_annotations(tsv) == [CaptionRecord("a.jpg", "With, commas.", None)]


def test_read_sharegpt4v_and_holdout(tmp_path):
    entries = [
        {
            "id": f"id{i}",
            "image": f"coco/train2017/{i:04d}.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat do you see happening in this image?"},
                {"from": "gpt", "value": f"Caption number {i}. It is long."},
            ],
        }
        for i in range(5)
    ]
    path = tmp_path / "share-captioner.json"
    path.write_text(json.dumps(entries))
    records = read_sharegpt4v(path)
    assert [r.image for r in records] == [f"coco/train2017/{i:04d}.jpg" for i in range(5)]
    assert [r.long_caption for r in records] == [f"Caption number {i}. It is long." for i in range(5)]
    assert all(r.short_caption is None for r in records)
    assert read_sharegpt4v(path, skip_first=2) == records[2:]  # training split after the held-out head
    assert read_sharegpt4v(path, limit=2) == records[:2]  # the held-out head (ShareGPT4V-1k)
    assert read_annotations(path, skip_first=4) == records[4:]  # .json means ShareGPT4V


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.jsonl", '{"image": "a.jpg", "caption": "ok"}\n{"image": "b.jpg"}\n', [":2", "no 'caption' field"]),
        ("a.jsonl", '{"image": "a.jpg", "caption": 7}\n', [":1", "'caption' must be a string, got int"]),
        ("a.jsonl", '{"image": "a.jpg", "caption": "x"}\n\n{"image": \n', [":3", "not valid JSON"]),
        ("a.jsonl", '["a.jpg", "caption"]\n', [":1", "expected a JSON object"]),
        ("a.jsonl", '{"image": "a.jpg", "caption": "  "}\n', [":1", "'caption' is empty"]),
        ("a.csv", "path,caption\na.jpg,x\n", ["no column 'image'", "columns: ['path', 'caption']"]),
        ("a.csv", "image,caption\na.jpg,ok\nb.jpg,\n", [":3", "'caption' is empty"]),
        ("a.csv", "image,caption\na.jpg,one, two\n", [":2", "quote fields"]),
        ("a.csv", "", ["empty file"]),
        ("a.json", '{"image": "a.jpg"}', ["expected a JSON list"]),
        (
            "a.json",
            '[{"id": 1, "image": "a.jpg", "conversations": [{"from": "gpt", "value": "ok"}]},'
            ' {"id": "x2", "image": "b.jpg", "conversations": [{"from": "human", "value": "?"}]}]',
            ["entry 1 (id 'x2')", "no turn from 'gpt'"],
        ),
        ("a.json", '[{"id": 1, "conversations": []}]', ["entry 0 (id 1)", "no 'image' field"]),
        ("a.json", '[{"image": "a.jpg", "conversations": "text"}]', ["entry 0", "'conversations' must be a list"]),
        ("a.txt", "whatever", ["pass format="]),
    ],
)
def test_malformed_annotations_name_the_file_and_place(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AnnotationError) as caught:
        read_annotations(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message
    assert isinstance(caught.value, ValueError)


def test_missing_annotation_file_and_image_root(tmp_path):
    with pytest.raises(DataFileNotFoundError, match="nope.jsonl"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(DataFileNotFoundError, match="no-root"):
        CaptionImageDataset([CaptionRecord("a.jpg", "x")], image_transform(SIZE), image_root=tmp_path / "no-root")


# --- transforms ---------------------------------------------------------------------------------------


def test_eval_transform_on_constant_colour_matches_hand_computation():
    color = (200, 100, 50)
    out = image_transform(16)(Image.new("RGB", (40, 30), color))
    assert out.shape == (3, 16, 16) and out.dtype == torch.float32
    expected = [(c / 255 - m) / s for c, m, s in zip(color, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, strict=True)]
    for channel in range(3):
        assert torch.allclose(out[channel], torch.full((16, 16), expected[channel]), atol=1e-5)
    custom = image_transform(ImagePreprocessing(16, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 0.125)))
    out = custom(Image.new("L", (20, 20), 255))  # grayscale input becomes RGB
    assert torch.allclose(out, torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1).expand(3, 16, 16), atol=1e-5)


def test_eval_transform_resizes_shortest_side_then_center_crops():
    stripes = Image.new("RGB", (60, 20), (255, 0, 0))
    stripes.paste((0, 255, 0), (20, 0, 40, 20))
    stripes.paste((0, 0, 255), (40, 0, 60, 20))
    out = image_transform(ImagePreprocessing(10, mean=(0, 0, 0), std=(1, 1, 1)))(stripes)
    # 60x20 -> 30x10, center 10x10 = the green middle third; squashing would keep red and blue.
    assert out.shape == (3, 10, 10)
    assert out[1].min() > 0.9 and out[0].max() < 0.2 and out[2].max() < 0.2  # bicubic bleeds a little
    framed = Image.new("RGB", (40, 40), (255, 0, 0))
    framed.paste((0, 255, 0), (8, 8, 32, 32))
    zoomed = image_transform(ImagePreprocessing(16, mean=(0, 0, 0), std=(1, 1, 1), resize_size=32))(framed)
    assert zoomed[0].max() < 0.2  # 40 -> 32: the green center (now 19 px) covers the 16x16 crop
    whole = image_transform(ImagePreprocessing(16, mean=(0, 0, 0), std=(1, 1, 1)))(framed)
    assert whole[0].max() > 0.9  # without the larger resize the red frame shows


def test_eval_transform_matches_open_clip():
    from open_clip.transform import image_transform as open_clip_transform

    pixels = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    ours = image_transform(24)(image)
    reference = open_clip_transform(24, is_train=False)(image)
    assert torch.allclose(ours, reference, atol=1e-6)


def test_train_transform_crops_randomly_within_scale():
    transform = image_transform(12, train=True)
    crop = transform.transforms[0]  # the crop comes first, RGB conversion after (open_clip order)
    assert type(crop).__name__ == "RandomResizedCrop" and crop.scale == (0.9, 1.0)
    pixels = np.random.default_rng(2).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    torch.manual_seed(0)
    first, second = transform(image), transform(image)
    assert first.shape == (3, 12, 12) and not torch.equal(first, second)
    constant = transform(Image.new("RGB", (30, 30), (10, 20, 30)))
    expected = torch.tensor(
        [(c / 255 - m) / s for c, m, s in zip((10, 20, 30), OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, strict=True)]
    )
    assert torch.allclose(constant, expected.view(3, 1, 1).expand(3, 12, 12), atol=1e-5)


def test_preprocessing_from_model_configs():
    from transformers import CLIPConfig, CLIPImageProcessor

    hf_processor = {
        "crop_size": {"height": 32, "width": 32},
        "size": {"shortest_edge": 36},
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.25, 0.25],
    }
    assert ImagePreprocessing.from_source(hf_processor) == ImagePreprocessing(32, (0.5,) * 3, (0.25,) * 3, 36)
    processor = CLIPImageProcessor(crop_size={"height": 64, "width": 64}, size={"shortest_edge": 64})
    assert ImagePreprocessing.from_source(processor) == ImagePreprocessing(64)
    config = CLIPConfig(vision_config={"image_size": 48})
    assert ImagePreprocessing.from_source(config) == ImagePreprocessing(48, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD)
    open_clip_cfg = {"size": 336, "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6), "interpolation": "bicubic"}
    model = type("Model", (), {"visual": type("Visual", (), {"preprocess_cfg": open_clip_cfg})()})()
    assert ImagePreprocessing.from_source(model) == ImagePreprocessing(336, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    with pytest.raises(ValueError, match="square"):
        ImagePreprocessing.from_source({"crop_size": {"height": 32, "width": 48}})


# --- images and the map-style dataset -------------------------------------------------------------


def test_load_image_reports_bad_files(tmp_path):
    (tmp_path / "cut.jpg").write_bytes(truncated(noisy_jpeg()))
    (tmp_path / "cut.png").write_bytes(truncated(image_bytes(size=(40, 40))))
    (tmp_path / "text.png").write_text("hello")
    for name in ("missing.png", "cut.jpg", "cut.png", "text.png"):
        with pytest.raises(BadTrainingImageError, match=name):
            load_image(tmp_path / name)
    with pytest.raises(BadTrainingImageError, match="shard-1:key"):
        load_image(b"\x89PNG garbage", name="shard-1:key")
    palette = io.BytesIO()
    Image.new("P", (4, 4), 3).save(palette, format="PNG")
    assert load_image(palette.getvalue()).mode == "P"  # kept: image_transform converts after the crop, as open_clip
    assert load_image(noisy_jpeg()).size == (48, 48)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bad_images_are_counted_and_skipped_through_a_dataloader(image_folder, num_workers):
    root, records, bad = image_folder
    dataset = CaptionImageDataset(records, image_transform(SIZE), image_root=root)
    assert isinstance(dataset[3], BadSample) and isinstance(dataset[0], Sample)
    loader = build_dataloader(dataset, batch_size=4, num_workers=num_workers, drop_last=False, seed=3)
    seen, skipped = [], []
    for batch in loader:
        assert batch.images.shape == (len(batch), 3, SIZE, SIZE)
        for index, long_caption, short_caption in zip(
            batch.indices, batch.long_captions, batch.short_captions, strict=True
        ):
            assert long_caption == f"long {index}"
            assert short_caption == (f"short {index}" if index % 2 else None)
        seen += batch.indices
        skipped += [item.index for item in batch.skipped]
        assert batch.num_skipped == len(batch.skipped)
    assert sorted(seen) == sorted(set(range(10)) - bad)
    assert sorted(skipped) == sorted(bad)
    first_red = dataset[1].image[0, 0, 0]  # image 1 is (20, 0, 0)
    assert torch.isclose(first_red, torch.tensor((20 / 255 - OPENAI_CLIP_MEAN[0]) / OPENAI_CLIP_STD[0]), atol=1e-5)


def test_dataset_records_paths_and_pickling(image_folder, tmp_path):
    root, records, _ = image_folder
    absolute = str(root / "img0.png")
    dataset = CaptionImageDataset(
        [*records, CaptionRecord(absolute, "abs", None)], image_transform(SIZE), image_root=root
    )
    assert dataset.record(1) == records[1] and dataset.record(0).short_caption is None
    assert dataset.image_path(2) == root / "img2.png" and dataset.image_path(10) == Path(absolute)
    assert isinstance(dataset[10], Sample)
    with pytest.raises(IndexError):
        dataset[11]
    clone = pickle.loads(pickle.dumps(dataset))  # what spawned workers receive
    assert clone.record(9) == records[9] and torch.equal(clone[2].image, dataset[2].image)


def test_collate_of_an_all_bad_batch_is_empty_but_counts():
    bad = [BadSample(1, "a.png", "missing"), BadSample(2, "b.png", "truncated")]
    batch = collate_samples(bad, image_shape=(3, SIZE, SIZE))
    assert len(batch) == 0 and batch.num_skipped == 2 and batch.images.shape == (0, 3, SIZE, SIZE)
    assert collate_samples(bad).images.shape == (0,)
    with pytest.raises(TypeError, match="Sample / BadSample"):
        collate_samples([("image", "caption")])


# --- the resumable sampler --------------------------------------------------------------------------------


def test_sampler_order_depends_only_on_seed_and_epoch():
    def order(seed, epoch):
        sampler = ResumableSampler(100, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(0, 0) == order(0, 0)
    assert sorted(order(0, 0)) == list(range(100))
    assert order(0, 1) != order(0, 0)
    assert order(1, 0) != order(0, 0)
    assert order(0, 1) != order(1, 0)  # (seed, epoch) are mixed, not added
    sequential = ResumableSampler(10, shuffle=False)
    sequential.set_epoch(5)
    assert list(sequential) == list(range(10))


@pytest.mark.parametrize("start", [0, 1, 37, 99, 100, 120])
def test_sampler_resume_yields_exactly_the_remaining_order(start):
    sampler = ResumableSampler(100, seed=7)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.set_epoch(2, start=start)
    assert list(sampler) == full[start:]
    assert len(sampler) == len(full[start:])


@pytest.mark.parametrize(("size", "drop_last"), [(60, False), (61, False), (61, True), (2, False)])
def test_sampler_rank_split_is_disjoint_covering_and_resumable(size, drop_last):
    world = 3

    def shares(start=0):
        result = []
        for rank in range(world):
            sampler = ResumableSampler(size, seed=4, num_replicas=world, rank=rank, drop_last=drop_last)
            sampler.set_epoch(1, start=start)
            result.append(list(sampler))
        return result

    full = shares()
    assert len({len(share) for share in full}) == 1  # every rank steps equally often
    flat = [i for share in full for i in share]
    if drop_last:
        assert len(flat) == len(set(flat)) == size - size % world
    else:
        assert set(flat) == set(range(size))  # covering; only the padding repeats
        assert len(flat) - len(set(flat)) == (-size) % world
    if size % world == 0 or drop_last:
        assert len(flat) == len(set(flat))
    batches_done, batch_size = 2, 4
    if batches_done * batch_size <= len(full[0]):
        resumed = shares(start=batches_done * batch_size * world)
        assert resumed == [share[batches_done * batch_size :] for share in full]


def test_dataloader_resume_mid_epoch_gives_the_remaining_batches(image_folder):
    root, records, _ = image_folder
    good = [records[i] for i in (0, 1, 2, 4, 6, 7, 9)] * 3  # 21 good samples
    dataset = CaptionImageDataset(good, image_transform(SIZE), image_root=root)
    for rank in range(2):
        loader = build_dataloader(dataset, batch_size=3, seed=11, rank=rank, world_size=2)
        start_epoch(loader, 4)
        uninterrupted = [batch.indices for batch in loader]
        assert len(uninterrupted) == len(loader) == 11 // 3
        start_epoch(loader, 4, batches_done=2)
        assert len(loader) == len(uninterrupted) - 2
        assert [batch.indices for batch in loader] == uninterrupted[2:]
        start_epoch(loader, 5)
        assert [batch.indices for batch in loader] != uninterrupted


# --- tar shards -------------------------------------------------------------------------------------


def test_expand_shards_brace_patterns():
    assert expand_shards("data/shards-{000..003}.tar") == [f"data/shards-{i:03d}.tar" for i in range(4)]
    assert expand_shards("{a,b}-{8..10}.tar") == ["a-8.tar", "a-9.tar", "a-10.tar", "b-8.tar", "b-9.tar", "b-10.tar"]
    assert expand_shards("x.tar::y-{1..2}.tar") == ["x.tar", "y-1.tar", "y-2.tar"]
    assert expand_shards(["p.tar", Path("q-{0..1}.tar")]) == ["p.tar", "q-0.tar", "q-1.tar"]
    for bad in ("s-{3..1}.tar", "s-{0..2.tar", "s-{{0..1}}.tar"):
        with pytest.raises(ValueError):
            expand_shards(bad)


def test_split_shards_is_disjoint_and_covering():
    shards = [f"s{i}" for i in range(11)]
    parts = [split_shards(shards, rank=r, world_size=2, worker_id=w, num_workers=3) for r in range(2) for w in range(3)]
    flat = [s for part in parts for s in part]
    assert sorted(flat) == sorted(shards) and len(flat) == len(set(flat))


def test_tar_shards_read_captions_and_skip_bad_samples(tmp_path):
    members = [
        ("a.jpg", image_bytes(fmt="JPEG")),
        ("a.txt", b" Long A. "),
        ("a.short.txt", b"Short A."),
        ("b.png", image_bytes()),
        ("b.json", json.dumps({"caption": "Long B.", "short_caption": "Short B."}).encode()),
        ("c.png", truncated(image_bytes(size=(40, 40)))),
        ("c.txt", b"Long C."),  # corrupt image
        ("d.png", image_bytes()),  # no caption
        ("e.txt", b"Long E."),  # no image
        ("f.png", image_bytes()),
        ("f.json", b"{broken"),  # unreadable json
        ("dir/g.PNG", image_bytes()),
        ("dir/g.txt", b"Long G."),
        ("dir/g.extra.bin", b"ignored"),
        ("._junk", b"x"),
    ]
    shard = write_tar(tmp_path / "one.tar", members)
    dataset = TarShardDataset(str(shard), image_transform(SIZE))
    dataset.configure(shuffle=False)
    items = list(dataset)
    good = {item.index.split(":")[-1]: item for item in items if isinstance(item, Sample)}
    bad = sorted(item.index.split(":")[-1] for item in items if isinstance(item, BadSample))
    assert sorted(good) == ["a", "b", "dir/g"] and bad == ["c", "d", "e", "f"]
    assert (good["a"].long_caption, good["a"].short_caption) == ("Long A.", "Short A.")
    assert (good["b"].long_caption, good["b"].short_caption) == ("Long B.", "Short B.")
    assert (good["dir/g"].long_caption, good["dir/g"].short_caption) == ("Long G.", None)
    assert good["a"].image.shape == (3, SIZE, SIZE)


def test_truncated_shard_keeps_earlier_samples_and_counts_one_bad(tmp_path):
    members = [("a.png", image_bytes()), ("a.txt", b"Long A."), ("b.png", image_bytes()), ("b.txt", b"Long B.")]
    members += [("h.jpg", noisy_jpeg()), ("h.txt", b"Long H."), ("i.png", image_bytes()), ("i.txt", b"Long I.")]
    whole = write_tar(tmp_path / "whole.tar", members)
    with tarfile.open(whole) as tar:
        cut = tar.getmember("h.jpg").offset_data + 100
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes(whole.read_bytes()[:cut])
    loader = build_dataloader(TarShardDataset([damaged], image_transform(SIZE)), batch_size=4, drop_last=False)
    batches = list(loader)
    assert sorted(caption for batch in batches for caption in batch.long_captions) == ["Long A.", "Long B."]
    skipped = [item for batch in batches for item in batch.skipped]
    assert len(skipped) == 1 and "damaged shard" in skipped[0].reason and skipped[0].source == str(damaged)


def test_tar_shards_split_across_ranks_and_workers_without_duplicates(tmp_path):
    shards = write_shards(tmp_path, num_shards=6, per_shard=3)
    everything = sorted(f"s{s}-{i:03d}" for s in range(6) for i in range(3))
    seen = []
    for rank in range(2):
        loader = build_dataloader(
            TarShardDataset(shards, image_transform(SIZE), shuffle_buffer=4),
            batch_size=2,
            num_workers=2,
            rank=rank,
            world_size=2,
            drop_last=False,
            seed=5,
        )
        seen += [caption for batch in loader for caption in batch.long_captions]
    assert sorted(seen) == everything


def test_tar_shard_order_is_seeded_and_resumes_exactly(tmp_path):
    shards = write_shards(tmp_path, num_shards=4, per_shard=5)
    dataset = TarShardDataset(shards, image_transform(SIZE), shuffle_buffer=6, samples_per_epoch=24)
    loader = build_dataloader(dataset, batch_size=2, num_workers=2, seed=9)
    assert len(loader) == 12  # 24 samples / (2 workers x batch 2) -> 6 per worker, 12 batches of 2
    start_epoch(loader, 1)
    uninterrupted = [batch.long_captions for batch in loader]
    assert len(uninterrupted) == 12
    assert [batch.long_captions for batch in loader] == uninterrupted  # same (seed, epoch): same order
    start_epoch(loader, 2)
    assert [batch.long_captions for batch in loader] != uninterrupted
    for done in (3, 4):  # odd and even: the next batch is due from either worker
        start_epoch(loader, 1, batches_done=done)
        assert [batch.long_captions for batch in loader] == uninterrupted[done:]
    with pytest.raises(ValueError, match="samples_per_epoch"):
        TarShardDataset(shards, image_transform(SIZE)).set_epoch(0, skip_batches=1)


def test_tar_shuffle_buffer_mixes_within_a_shard_and_is_seeded(tmp_path):
    shards = write_shards(tmp_path, num_shards=1, per_shard=12)
    in_file_order = [f"s0-{i:03d}" for i in range(12)]
    dataset = TarShardDataset(shards, image_transform(SIZE), shuffle_buffer=5)

    def captions(seed, shuffle=True):
        dataset.configure(seed=seed, shuffle=shuffle)
        return [item.long_caption for item in dataset]

    assert captions(0, shuffle=False) == in_file_order
    shuffled = captions(0)
    assert sorted(shuffled) == in_file_order and shuffled != in_file_order  # one shard: only the buffer reorders
    assert captions(0) == shuffled and captions(1) != shuffled


def test_tar_shards_refuse_impossible_splits(tmp_path):
    shards = write_shards(tmp_path, num_shards=1, per_shard=2)
    with pytest.raises(DataFileNotFoundError, match="1 of 2 shards"):
        TarShardDataset([shards[0], str(tmp_path / "gone.tar")], image_transform(SIZE))
    dataset = TarShardDataset(shards, image_transform(SIZE), samples_per_epoch=4)
    dataset.configure(rank=1, world_size=2)
    with pytest.raises(ShardError, match="no shard"):
        list(dataset)
    with pytest.raises(ValueError, match="persistent_workers"):
        build_dataloader(dataset, batch_size=2, num_workers=1, persistent_workers=True)


def test_readable_images_are_checked_before_training(image_folder, tmp_path):
    root, records, bad = image_folder
    dataset = CaptionImageDataset(records, image_transform(SIZE), image_root=root)
    dataset.check_readable(len(records) - len(bad))  # exactly enough
    with pytest.raises(DataError, match=rf"only 7 of 10 training images can be read, and a step needs 8: .*{root}"):
        dataset.check_readable(8)
    elsewhere = CaptionImageDataset(records, image_transform(SIZE), image_root=tmp_path)  # a wrong image root
    with pytest.raises(DataError, match=r"only 0 of 10 .*First failure: .*img0\.png"):
        elsewhere.check_readable(2)


def test_first_captions_ignore_order_and_position(image_folder, tmp_path):
    root, records, _ = image_folder
    repeated = [records[0], records[0], *records[1:]]
    assert CaptionImageDataset(repeated, image_transform(SIZE), image_root=root).first_captions(3) == [
        "long 0",
        "long 1",
        "long 2",
    ]
    shards = write_shards(tmp_path, num_shards=2, per_shard=3)
    dataset = TarShardDataset(shards, image_transform(SIZE), shuffle_buffer=4, samples_per_epoch=6)
    dataset.set_epoch(3, skip_batches=1)  # shuffling and resume position do not matter
    assert dataset.first_captions(4) == ["s0-000", "s0-001", "s0-002", "s1-000"]
    assert len(dataset.first_captions(100)) == 6
