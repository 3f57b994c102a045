"""The shapes world as an image-probe source: seeded one-large scenes and rendered single-object references.

Scenes come from :func:`~debias_diffusion.shapes_world.sample_scene` with ``SceneConfig(size_mode=
"one_large", min_objects=K, max_objects=K)``: one object drawn from the large size range, the others
from the small range, distinct colours. An object is a ``"<colour> <shape>"`` phrase; the
vocabulary is every colour x shape of the config (8 x 8 = 64), colour-major.

Slots (our choice): slot 0 is the large object; the small objects follow by decreasing exact area
(``size**2`` before occlusion), ties by scene index, so "Small 1" is the largest small object.

References (our choice): each vocabulary object rendered alone, centred, on the scenes' background
(no texture), at the scenes' resolution, at ``reference_size`` (default: the middle of the large
size range). A reference drawn at the large size also matches the large object's *pixels* best, so
even a random image tower ranks the large object first: compare with a random model, or render
the references at a small size (e.g. 0.16) to see how much of a model's preference survives.
"""

from __future__ import annotations

from dataclasses import replace

from tqdm.auto import tqdm

from ..errors import ProbeConfigError, ShapesWorldError
from ..shapes_world import Background, Scene, SceneConfig, SceneObject, render_scene, sample_scene
from ..text_probes.vocabulary import Vocabulary
from .data import ImageProbeData, ProbeImage

__all__ = ["SLOT_ORDER", "reference_scene", "shapes_world_data", "shapes_world_vocabulary", "slot_order"]

SLOT_ORDER = "shapes world: large object first, then small objects by decreasing exact area (our choice)"


def shapes_world_vocabulary(config: SceneConfig) -> Vocabulary:
    """``"<colour> <shape>"`` for every colour and shape of ``config``, colour-major."""
    return Vocabulary("shapes-world", tuple(f"{c} {s}" for c in config.colours for s in config.shapes))


def slot_order(scene: Scene) -> tuple[int, ...]:
    """Scene object indices in slot order: the large object, then the rest by decreasing size."""
    large = [i for i, obj in enumerate(scene.objects) if obj.size_class == "large"]
    if len(large) != 1:
        raise ProbeConfigError(f"scene {scene.index} has {len(large)} large objects; the probes need exactly one")
    small = sorted((i for i in range(len(scene.objects)) if i != large[0]), key=lambda i: (-scene.objects[i].size, i))
    return (large[0], *small)


def reference_scene(colour: str, shape: str, config: SceneConfig, size: float | None = None) -> Scene:
    """One object, centred, at ``size`` (default: the middle of the large range), on the plain background."""
    size = sum(config.large_size) / 2 if size is None else size
    return Scene(0, 0, (SceneObject(shape, colour, size, (0.5, 0.5), "large"),), Background(config.background))


def shapes_world_data(
    scenes: int,
    objects: int = 4,
    *,
    seed: int = 0,
    resolution: int = 224,
    reference_size: float | None = None,
    config: SceneConfig | None = None,
    progress: bool = False,
) -> ImageProbeData:
    """``scenes`` seeded scenes of ``objects`` shapes (one large), rendered at ``resolution`` pixels.

    ``reference_size``: the references' size as a fraction of the image side (see the module docstring).
    """
    if isinstance(scenes, bool) or not isinstance(scenes, int) or scenes < 1:
        raise ProbeConfigError(f"the number of scenes must be a positive integer, got {scenes!r}")
    if isinstance(objects, bool) or not isinstance(objects, int) or objects < 2:
        raise ProbeConfigError(f"scenes need at least 2 objects (a large and a small one), got {objects!r}")
    try:
        base = config or SceneConfig()
        config = replace(base, size_mode="one_large", min_objects=objects, max_objects=objects)
        vocabulary = shapes_world_vocabulary(config)
        index = {name: i for i, name in enumerate(vocabulary.objects)}
        references = [
            render_scene(reference_scene(c, s, config, reference_size), resolution).image
            for c in config.colours
            for s in config.shapes
        ]
        images = []
        for number in tqdm(range(scenes), desc="rendering scenes", disable=not progress, leave=False):
            scene = sample_scene(seed, number, config)
            slots = tuple(index[scene.objects[i].phrase] for i in slot_order(scene))
            images.append(ProbeImage(render_scene(scene, resolution).image, f"scene-{number:06d}", slots))
    except ShapesWorldError as err:
        raise ProbeConfigError(f"shapes world: {err}") from err
    return ImageProbeData("shapes-world", vocabulary, tuple(references), tuple(images), SLOT_ORDER)
