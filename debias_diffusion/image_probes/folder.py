"""Image probes on a folder named the ComCO / SimCO way.

Layout (our convention; the released datasets may name files differently, rename to this)::

    images/      pizza_apple_desk.png        obj1_obj2_..._objn.<ext>: obj1 is the LARGE object,
                 cat_dog_cup__0007.png       then the small ones in slot order (small 1, 2, ...);
                                             anything after "__" is a free id for repeated sets
    references/  pizza.png  apple.png  ...   one single-object image per object, named by the object

Extensions ``.png``, ``.jpg``, ``.jpeg``, ``.webp`` (any case); hidden files and other files are
skipped. An object's name is its reference file's stem, exactly (so it may contain spaces or
hyphens but not ``_``), and is what the matching captions say. The vocabulary is every reference,
sorted by name. Images are opened lazily, when they are embedded.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import ProbeConfigError
from ..text_probes.vocabulary import make_vocabulary
from .data import ImageProbeData, ProbeImage

__all__ = ["IMAGE_SUFFIXES", "SLOT_ORDER", "parse_image_name", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SLOT_ORDER = "folder: objects in file-name order, the first one the large object (obj1_obj2_...)"
ID_SEPARATOR = "__"


def parse_image_name(path: str | Path) -> tuple[str, ...]:
    """``"pizza_apple_desk__7.png"`` -> ``("pizza", "apple", "desk")``."""
    stem = Path(path).stem.split(ID_SEPARATOR, 1)[0]
    names = tuple(stem.split("_"))
    if len(names) < 2 or not all(name.strip() for name in names):
        raise ProbeConfigError(
            f"{Path(path).name}: image names must list at least 2 objects as obj1_obj2[_...] (obj1 the large one), "
            "with no empty names"
        )
    return names


def read_image_folder(images: str | Path, references: str | Path, *, objects: int | None = None) -> ImageProbeData:
    """Read the layout in the module docstring; ``objects`` keeps only images of that many objects."""
    images_dir, references_dir = Path(images), Path(references)
    reference_files = _image_files(references_dir, "references")
    by_name: dict[str, Path] = {}
    for path in reference_files:
        if "_" in path.stem:
            raise ProbeConfigError(f"{path}: reference names may not contain '_' (it separates objects in image names)")
        if path.stem in by_name:
            raise ProbeConfigError(f"{path} and {by_name[path.stem]} are references for the same object")
        by_name[path.stem] = path
    vocabulary = make_vocabulary(references_dir.name or "references", sorted(by_name))
    index = {name: i for i, name in enumerate(vocabulary.objects)}
    if vocabulary.objects != tuple(sorted(by_name)):
        raise ProbeConfigError(f"{references_dir}: reference names may not start, end or repeat spaces")

    parsed = [(path, parse_image_name(path)) for path in _image_files(images_dir, "images")]
    if objects is not None:
        if isinstance(objects, bool) or not isinstance(objects, int) or objects < 2:
            raise ProbeConfigError(f"--objects must be an integer of at least 2, got {objects!r}")
        kept = [(path, names) for path, names in parsed if len(names) == objects]
        if not kept:
            counts = Counter(len(names) for _, names in parsed)
            raise ProbeConfigError(f"{images_dir}: no image holds {objects} objects (counts found: {_counts(counts)})")
        parsed = kept
    probe_images = []
    for path, names in parsed:
        missing = [name for name in names if name not in index]
        if missing:
            raise ProbeConfigError(
                f"{path.name} names {', '.join(repr(m) for m in missing)} but {references_dir} has no "
                f"{'/'.join(repr(m + '.png') for m in missing)} (every object needs a single-object reference image)"
            )
        probe_images.append(ProbeImage(path, path.name, tuple(index[name] for name in names)))
    counts = Counter(len(image.objects) for image in probe_images)
    if len(counts) > 1:
        raise ProbeConfigError(
            f"{images_dir}: images hold different numbers of objects ({_counts(counts)}); choose one with --objects K"
        )
    return ImageProbeData(str(images_dir), vocabulary, tuple(by_name[n] for n in vocabulary.objects),
                          tuple(probe_images), SLOT_ORDER)  # fmt: skip


def _image_files(folder: Path, what: str) -> list[Path]:
    if not folder.is_dir():
        raise ProbeConfigError(f"{what} folder {folder} not found")
    files = sorted(
        path
        for path in folder.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ProbeConfigError(f"{what} folder {folder} holds no {'/'.join(IMAGE_SUFFIXES)} files")
    return files


def _counts(counts: Counter) -> str:
    return ", ".join(f"{count} image(s) of {n}" for n, count in sorted(counts.items()))
