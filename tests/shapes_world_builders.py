"""Hand-placed shapes-world scenes and the prominence records a colour detector run would give for them."""

from __future__ import annotations

from debias_diffusion.prominence.measurement import ProminenceRecord
from debias_diffusion.shapes_world import Scene, SceneObject

SPOTS = ((0.27, 0.27), (0.73, 0.73), (0.27, 0.73), (0.73, 0.27))  # far apart: no object touches another


def scene(*objects: tuple[str, str]) -> Scene:
    """``(colour, shape)`` objects at separate spots, each a 0.3-side (large) shape."""
    return Scene(
        0, 0, [SceneObject(shape, colour, 0.3, SPOTS[i], "large") for i, (colour, shape) in enumerate(objects)]
    )


def records_for(
    image: str, model: str, template: str, object_set: int, objects: list[str], present: list[bool], seed: int = 0
) -> list[ProminenceRecord]:
    """One image's records, ``objects`` in prompt order; a present object covers 0.1 of the image."""
    return [
        ProminenceRecord(model=model, object_set=object_set, template=template, ordering=tuple(objects), seed=seed,
                         image=image, object=name, position=i + 1, present=ok, score=float(ok), box=None,
                         box_area=0.1 if ok else 0.0, mask_area=None)
        for i, (name, ok) in enumerate(zip(objects, present, strict=True))
    ]  # fmt: skip
