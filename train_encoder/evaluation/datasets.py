"""Readers for local copies of the retrieval evaluation sets, in the layouts they are published in.

Each reader returns an :class:`EvalSet`: image paths, captions, and the image each caption
describes. Nothing is downloaded; a missing file or folder raises :class:`DatasetNotFoundError`
naming the path and the expected layout (also in ``docs/evaluation.md``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from debias_diffusion.errors import DebiasDiffusionError

__all__ = [
    "DATASET_READERS",
    "LAYOUTS",
    "DatasetFormatError",
    "DatasetNotFoundError",
    "EvalSet",
    "read_coco",
    "read_dci",
    "read_docci",
    "read_eval_set",
    "read_flickr30k",
    "read_long_dci",
    "read_sharegpt4v_1k",
    "read_urban1k",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
SHAREGPT4V_JSON = "share-captioner_coco_lcs_sam_1246k_1107.json"
CAPTIONS_PER_IMAGE = 5

LAYOUTS = {
    "urban1k": "ROOT/Urban1k/image/<stem>.jpg and ROOT/Urban1k/caption/<stem>.txt (same stems; "
    "ROOT may also be the Urban1k folder itself)",
    "docci": "ROOT/docci_descriptions.jsonlines (one JSON object a line: split, image_file, description) "
    "and ROOT/images/<image_file> (from docci_images.tar.gz)",
    "dci": "ROOT/densely_captioned_images/annotations/*.json (fields image, short_caption, extra_caption) "
    "and ROOT/densely_captioned_images/photos/<image> (ROOT may also be the densely_captioned_images "
    "folder; complete/ is read when annotations/ is absent)",
    "sharegpt4v-1k": f"ROOT/{SHAREGPT4V_JSON} (a JSON list of {{image, conversations}}; or pass the JSON file) "
    "and the images at IMAGE_ROOT/<image> (IMAGE_ROOT defaults to the JSON's folder)",
    "coco": "ROOT/annotations/captions_val2017.json and ROOT/val2017/<file_name>",
    "flickr30k": "ROOT/dataset_flickr30k.json (Karpathy split: images[] with filename, split, sentences[].raw) "
    "and ROOT/flickr30k-images/<filename>",
}


class DatasetNotFoundError(DebiasDiffusionError, FileNotFoundError):
    """A file or folder of an evaluation set is missing."""


class DatasetFormatError(DebiasDiffusionError, ValueError):
    """An evaluation set's files exist but do not hold what the published layout has."""


@dataclass(frozen=True)
class EvalSet:
    """Images, captions, and for each caption the index of its image.

    ``variant`` names the caption set ("full", or a caption variant's name once one is applied); it is
    part of result rows and embedding-cache keys.
    """

    name: str
    image_paths: tuple[Path, ...]
    captions: tuple[str, ...]
    caption_to_image: tuple[int, ...]
    variant: str = "full"

    def __post_init__(self) -> None:
        if len(self.captions) != len(self.caption_to_image):
            raise ValueError(
                f"{self.name}: {len(self.captions)} captions but {len(self.caption_to_image)} caption->image entries"
            )
        if not self.image_paths or not self.captions:
            raise ValueError(f"{self.name}: an evaluation set needs at least one image and one caption")
        count = len(self.image_paths)
        if any(not 0 <= i < count for i in self.caption_to_image):
            raise ValueError(f"{self.name}: caption_to_image must index the {count} images")
        uncaptioned = count - len(set(self.caption_to_image))
        if uncaptioned:
            raise ValueError(f"{self.name}: {uncaptioned} images have no caption")

    @property
    def num_images(self) -> int:
        return len(self.image_paths)

    @property
    def num_captions(self) -> int:
        return len(self.captions)

    def with_captions(self, captions: Sequence[str], variant: str) -> EvalSet:
        """The same images with new captions (one per old caption, same order)."""
        if len(captions) != len(self.captions):
            raise ValueError(f"{self.name}: expected {len(self.captions)} captions, got {len(captions)}")
        return replace(self, captions=tuple(captions), variant=variant)


def read_urban1k(root: str | Path) -> EvalSet:
    """Urban1k: 1000 image / long-caption pairs, paired by file stem, in natural stem order."""
    root = Path(root)
    base = root / "Urban1k" if (root / "Urban1k").is_dir() else root
    image_dir = _folder(base / "image", "urban1k")
    caption_dir = _folder(base / "caption", "urban1k")
    images = {p.stem: p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    captions = {p.stem: p for p in caption_dir.glob("*.txt")}
    if images.keys() != captions.keys():
        only_images = sorted(images.keys() - captions.keys())[:3]
        only_captions = sorted(captions.keys() - images.keys())[:3]
        raise DatasetFormatError(
            f"urban1k: images and captions in {base} do not pair up by stem (images without caption "
            f"e.g. {only_images}, captions without image e.g. {only_captions}); expected {LAYOUTS['urban1k']}"
        )
    stems = sorted(images, key=_natural_key)
    texts = [" ".join(captions[s].read_text(encoding="utf-8").split()) for s in stems]
    return _one_to_one("urban1k", [images[s] for s in stems], texts)


def read_docci(root: str | Path, *, split: str = "test") -> EvalSet:
    """DOCCI: the ``split`` entries (test: 5000) of ``docci_descriptions.jsonlines``, file order."""
    root = Path(root)
    jsonl = _file(root / "docci_descriptions.jsonlines", "docci")
    image_dir = _folder(root / "images", "docci")
    paths, texts = [], []
    for number, line in enumerate(jsonl.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = _parse_json(line, f"{jsonl}:{number}", "docci")
        if record.get("split") == split:
            paths.append(image_dir / _field(record, "image_file", f"{jsonl}:{number}", "docci"))
            texts.append(_field(record, "description", f"{jsonl}:{number}", "docci"))
    if not paths:
        raise DatasetFormatError(f"docci: no entries with split == {split!r} in {jsonl}")
    _require_files(paths, "docci")
    return _one_to_one("docci", paths, texts)


def read_dci(root: str | Path, *, long: bool = False) -> EvalSet:
    """DCI (7805 pairs): caption = ``short_caption`` + " " + ``extra_caption``; ``long=True``: extra only.

    One JSON per image, read in file-name order; the image is ``photos/<image>``.
    """
    root = Path(root)
    base = root / "densely_captioned_images" if (root / "densely_captioned_images").is_dir() else root
    name = "long-dci" if long else "dci"
    annotation_dir = base / "annotations"
    if not annotation_dir.is_dir() and (base / "complete").is_dir():
        annotation_dir = base / "complete"
    annotation_dir = _folder(annotation_dir, name)
    photo_dir = _folder(base / "photos", name)
    paths, texts = [], []
    for file in sorted(annotation_dir.glob("*.json")):
        record = _parse_json(file.read_text(encoding="utf-8"), str(file), name)
        extra = _field(record, "extra_caption", str(file), name).strip()
        short = _field(record, "short_caption", str(file), name).strip()
        paths.append(photo_dir / _field(record, "image", str(file), name))
        texts.append(extra if long else f"{short} {extra}".strip())
    if not paths:
        raise DatasetFormatError(f"{name}: no *.json annotation files in {annotation_dir}; expected {LAYOUTS['dci']}")
    _require_files(paths, name)
    return _one_to_one(name, paths, texts)


def read_long_dci(root: str | Path) -> EvalSet:
    """The "long-DCI" variant: DCI with the extra caption only (see :func:`read_dci`)."""
    return read_dci(root, long=True)


def read_sharegpt4v_1k(root: str | Path, *, image_root: str | Path | None = None, count: int = 1000) -> EvalSet:
    """ShareGPT4V-1k: the first ``count`` entries of the ShareGPT4V captioner JSON (held out in training).

    Caption = the first ``gpt`` turn of ``conversations``, newlines replaced by spaces.
    """
    root = Path(root)
    json_file = _file(root if root.suffix == ".json" else root / SHAREGPT4V_JSON, "sharegpt4v-1k")
    images = Path(image_root) if image_root is not None else json_file.parent
    entries = _parse_json(json_file.read_text(encoding="utf-8"), str(json_file), "sharegpt4v-1k")
    if not isinstance(entries, list) or len(entries) < count:
        size = len(entries) if isinstance(entries, list) else "not a list"
        raise DatasetFormatError(f"sharegpt4v-1k: {json_file} must be a JSON list of at least {count} entries ({size})")
    paths, texts = [], []
    for index, entry in enumerate(entries[:count]):
        where = f"{json_file}[{index}]"
        turns = _field(entry, "conversations", where, "sharegpt4v-1k", kind=list)
        answer = next((t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"), None)
        if not isinstance(answer, str):
            raise DatasetFormatError(f"sharegpt4v-1k: {where} has no 'gpt' turn in 'conversations'")
        paths.append(images / _field(entry, "image", where, "sharegpt4v-1k"))
        texts.append(" ".join(answer.split()))
    _require_files(paths, "sharegpt4v-1k")
    return _one_to_one("sharegpt4v-1k", paths, texts)


def read_coco(root: str | Path, *, captions_per_image: int = CAPTIONS_PER_IMAGE) -> EvalSet:
    """COCO val2017 (5000 images): images in id order, the first 5 captions of each in file order."""
    root = Path(root)
    ann_file = _file(root / "annotations" / "captions_val2017.json", "coco")
    image_dir = _folder(root / "val2017", "coco")
    data = _parse_json(ann_file.read_text(encoding="utf-8"), str(ann_file), "coco")
    images = sorted(_field(data, "images", str(ann_file), "coco", kind=list), key=lambda im: im["id"])
    by_image: dict[Any, list[str]] = {im["id"]: [] for im in images}
    for ann in _field(data, "annotations", str(ann_file), "coco", kind=list):
        if ann["image_id"] in by_image:
            by_image[ann["image_id"]].append(" ".join(ann["caption"].split()))
    groups = [by_image[im["id"]][:captions_per_image] for im in images]
    return _many_to_one("coco", [image_dir / im["file_name"] for im in images], groups, ann_file)


def read_flickr30k(root: str | Path, *, split: str = "test", captions_per_image: int = CAPTIONS_PER_IMAGE) -> EvalSet:
    """Flickr30k, Karpathy split: by default the 1k **test** images x 5 captions (not the full 31k)."""
    root = Path(root)
    json_file = _file(root / "dataset_flickr30k.json", "flickr30k")
    image_dir = _folder(root / "flickr30k-images", "flickr30k")
    data = _parse_json(json_file.read_text(encoding="utf-8"), str(json_file), "flickr30k")
    images = [im for im in _field(data, "images", str(json_file), "flickr30k", kind=list) if im.get("split") == split]
    if not images:
        raise DatasetFormatError(f"flickr30k: no images with split == {split!r} in {json_file}")
    groups = [[" ".join(s["raw"].split()) for s in im["sentences"][:captions_per_image]] for im in images]
    return _many_to_one("flickr30k", [image_dir / im["filename"] for im in images], groups, json_file)


DATASET_READERS: dict[str, Callable[..., EvalSet]] = {
    "urban1k": read_urban1k,
    "docci": read_docci,
    "dci": read_dci,
    "long-dci": read_long_dci,
    "sharegpt4v-1k": read_sharegpt4v_1k,
    "coco": read_coco,
    "flickr30k": read_flickr30k,
}


def read_eval_set(name: str, root: str | Path, **options: Any) -> EvalSet:
    """Read the evaluation set called ``name`` (a key of :data:`DATASET_READERS`) from ``root``."""
    reader = DATASET_READERS.get(name.lower())
    if reader is None:
        raise ValueError(f"unknown evaluation set {name!r}; known: {', '.join(DATASET_READERS)}")
    return reader(root, **options)


def _one_to_one(name: str, paths: Sequence[Path], texts: Sequence[str]) -> EvalSet:
    return EvalSet(name, tuple(paths), tuple(texts), tuple(range(len(paths))))


def _many_to_one(name: str, paths: list[Path], groups: list[list[str]], source: Path) -> EvalSet:
    empty = [p.name for p, g in zip(paths, groups, strict=True) if not g]
    if empty:
        raise DatasetFormatError(f"{name}: {len(empty)} images in {source} have no caption, e.g. {empty[:3]}")
    _require_files(paths, name)
    captions = [text for group in groups for text in group]
    targets = [index for index, group in enumerate(groups) for _ in group]
    return EvalSet(name, tuple(paths), tuple(captions), tuple(targets))


def _layout_key(dataset: str) -> str:
    return "dci" if dataset == "long-dci" else dataset


def _folder(path: Path, dataset: str) -> Path:
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"{dataset}: folder {path} not found; expected layout: {LAYOUTS[_layout_key(dataset)]}"
        )
    return path


def _file(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{dataset}: file {path} not found; expected layout: {LAYOUTS[_layout_key(dataset)]}"
        )
    return path


def _require_files(paths: Iterable[Path], dataset: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{dataset}: {len(missing)} image files are missing, e.g. {', '.join(map(str, missing[:3]))}; "
            f"expected layout: {LAYOUTS[_layout_key(dataset)]}"
        )


def _parse_json(text: str, where: str, dataset: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DatasetFormatError(f"{dataset}: {where} is not valid JSON: {err}") from err


def _field(record: Any, key: str, where: str, dataset: str, *, kind: type = str) -> Any:
    value = record.get(key) if isinstance(record, dict) else None
    if not isinstance(value, kind):
        raise DatasetFormatError(
            f"{dataset}: {where} has no {kind.__name__} field {key!r}; expected {LAYOUTS[_layout_key(dataset)]}"
        )
    return value


def _natural_key(stem: str) -> tuple[int, int, str]:
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)
