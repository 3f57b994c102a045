"""Write N scenes to a folder: images, captions for ``train_encoder``, full ground truth, object sets.

Layout of ``output_dir``::

    config.json        the settings (seed, size, scene config, caption order); a re-run must match
    images/000000.png  one per scene
    captions.jsonl     {"image": "images/000000.png", "caption": LONG, "short_caption": SHORT}
    scenes.jsonl       the ground truth per scene (see :func:`scene_record`)
    object_sets.json   {"object_sets": [["red circle", "blue star"], ...], "scenes": [0, ...]}

Every file is written atomically. Re-running is idempotent and resumes: existing images are kept
(a scene is re-rendered for its ground truth, which is deterministic, but its PNG is not rewritten)
and the JSON files are only rewritten when their content changes; a larger ``scenes`` extends an
export. ``object_sets.json`` (for :func:`debias_diffusion.prominence.prompts.read_object_sets`)
lists the scenes with at least two objects, in object-index order; ``scenes`` gives their indices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..atomic_io import atomic_save_image, atomic_write_bytes, atomic_write_json
from ..errors import ShapesWorldError
from .captions import Caption, caption_scene
from .render import Rendering, check_resolution, render_scene
from .scenes import Scene, SceneConfig, check_seed, sample_scene

__all__ = ["FORMAT_VERSION", "ExportResult", "export_dataset", "image_name", "read_scenes", "scene_record"]

FORMAT_VERSION = 1
_FORMAT = "debias-diffusion shapes world"


@dataclass(frozen=True)
class ExportResult:
    output_dir: Path
    scenes: int
    images_written: int
    images_skipped: int


def image_name(index: int) -> str:
    """``images/000042.png``: the image path of scene ``index``, relative to the export folder."""
    return f"images/{index:06d}.png"


def export_dataset(
    output_dir: str | Path,
    scenes: int,
    *,
    size: int = 64,
    seed: int = 0,
    config: SceneConfig | None = None,
    caption_order: str = "size",
    varied: bool = True,
    supersample: int = 4,
    progress: bool = True,
) -> ExportResult:
    """Write scenes ``0 .. scenes - 1`` of run ``seed`` to ``output_dir`` (see the module docstring)."""
    if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
        raise ShapesWorldError(f"scenes must be a positive int, got {scenes!r}")
    if caption_order not in ("size", "random"):
        raise ShapesWorldError(f"caption_order must be 'size' or 'random', got {caption_order!r}")
    seed = check_seed("seed", seed)
    check_resolution(size, supersample)
    config = SceneConfig() if config is None else config
    output = Path(output_dir)
    settings = {
        "format": _FORMAT,
        "version": FORMAT_VERSION,
        "seed": seed,
        "size": size,
        "supersample": supersample,
        "caption_order": caption_order,
        "varied_phrasing": varied,
        "scene_config": config.to_dict(),
    }
    _claim(output, settings)
    captions, records, object_sets, set_scenes = [], [], [], []
    written = skipped = 0
    for index in tqdm(range(scenes), desc="shapes world", unit="scene", disable=not progress):
        scene = sample_scene(seed, index, config)
        rendering = render_scene(scene, size, supersample=supersample)
        caption = caption_scene(scene, caption_order, varied=varied)
        path = output / image_name(index)
        if path.is_file():
            skipped += 1
        else:
            atomic_save_image(path, rendering.image)
            written += 1
        captions.append({"image": image_name(index), "caption": caption.long, "short_caption": caption.short})
        records.append(scene_record(rendering, caption, image_name(index)))
        if len(scene.objects) >= 2:
            object_sets.append([obj.phrase for obj in scene.objects])
            set_scenes.append(index)
    _write_if_changed(output / "captions.jsonl", _jsonl(captions))
    _write_if_changed(output / "scenes.jsonl", _jsonl(records))
    sets = json.dumps({"object_sets": object_sets, "scenes": set_scenes}, indent=1) + "\n"
    _write_if_changed(output / "object_sets.json", sets.encode("utf-8"))
    return ExportResult(output, scenes, written, skipped)


def scene_record(rendering: Rendering, caption: Caption, image: str) -> dict[str, Any]:
    """The ground truth of one rendered scene.

    ``scene``: the scene itself (:meth:`Scene.to_dict`, full precision: ``Scene.from_dict`` and
    ``render_scene`` reproduce the image). Per object, in object-index order: ``id``, ``shape``,
    ``colour``, ``size`` (side of the equal-area square, fraction of the image side),
    ``size_class``, ``phrase``, ``centre`` (fractions), ``position``, ``box`` (the shape's
    bounding box in pixels), ``visible_box`` (its mask's, pixel edges, or null), ``full_area``
    / ``visible_area`` / ``mask_area`` (fractions of the image) and ``draw_rank`` (0 = drawn
    first). ``mention_order``: object ids in caption order. ``relations``: ``[i, relation, j]``
    for every ordered pair.
    """
    scene: Scene = rendering.scene
    size = rendering.size
    rank = {index: position for position, index in enumerate(scene.draw_order)}
    objects = []
    for i, obj in enumerate(scene.objects):
        objects.append(
            {
                "id": i,
                "shape": obj.shape,
                "colour": obj.colour,
                "size": _round(obj.size),
                "size_class": obj.size_class,
                "phrase": obj.phrase,
                "centre": [_round(v) for v in obj.centre],
                "position": obj.position,
                "box": [_round(v * size) for v in obj.box],
                "visible_box": None if rendering.boxes[i] is None else list(rendering.boxes[i]),
                "full_area": _round(rendering.full_areas[i]),
                "visible_area": _round(rendering.visible_areas[i]),
                "mask_area": _round(rendering.mask_areas[i]),
                "draw_rank": rank[i],
            }
        )
    return {
        "image": image,
        "index": scene.index,
        "image_size": size,
        "background": scene.to_dict()["background"],
        "objects": objects,
        "mention_order": list(caption.order),
        "relations": [list(relation) for relation in scene.relations()],
        "scene": scene.to_dict(),
    }


def read_scenes(path: str | Path) -> list[Scene]:
    """The scenes of an export's ``scenes.jsonl``, ready for ``render_scene``."""
    with Path(path).open(encoding="utf-8") as file:
        return [Scene.from_dict(json.loads(line)["scene"]) for line in file if line.strip()]


def _claim(output: Path, settings: dict[str, Any]) -> None:
    """Check that ``output`` is empty or an export with the same settings; write ``config.json``."""
    manifest = output / "config.json"
    if manifest.is_file():
        try:
            existing = json.loads(manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            existing = None
        if existing != json.loads(json.dumps(settings)):
            raise ShapesWorldError(
                f"{output} holds a shapes-world export made with other settings ({manifest}); "
                "use another folder, or the same settings to resume it"
            )
        return
    if output.exists() and (output.is_file() or any(output.iterdir())):
        raise ShapesWorldError(f"{output} exists and is not a shapes-world export (no config.json); use another folder")
    atomic_write_json(manifest, settings)


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def _round(value: float) -> float:
    return round(float(value), 6)
