"""``probe_image``: IOR, IOC and order-sensitive matching for several CLIP models on the same images."""

from __future__ import annotations

import gc
from collections.abc import Mapping
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from ..clip_embedding import encode_images, encode_text_features
from ..clip_loading import LoadedCLIP, ModelSource, load_clip_model
from ..errors import ProbeConfigError
from ..image_preprocessing import load_image
from ..probing.linear import split_indices
from ..probing.outputs import check_output_dir
from .data import ImageProbeData
from .ioc import ioc_probe
from .ior import ior_diagnostics, ior_metric, ior_similarity
from .matching import (
    MatchingCaptions,
    MatchingResult,
    absent_objects,
    matching_accuracy,
    matching_captions,
    paper_matching_captions,
)
from .report import write_report
from .results import ImageProbeResults, ImageProbeSettings, ModelImageProbeResult

__all__ = ["IMAGE_PROTOCOLS", "build_matching_captions", "probe_image"]

IMAGE_PROTOCOLS: tuple[str, ...] = ("ours", "paper")


def build_matching_captions(
    data: ImageProbeData, *, seed: int = 0, articles: bool = False, protocol: str = "ours"
) -> list[MatchingCaptions]:
    """Scenario 1 / 2 captions (see :mod:`.matching`): per image one seeded absent object (``"ours"``),
    or one pair per absent vocabulary object as clip-oscope builds them (``"paper"``)."""
    names = data.vocabulary.objects
    if protocol == "paper":
        return [
            c for i, image in enumerate(data.images) for c in paper_matching_captions(data.names(image), names, image=i)
        ]
    absent = absent_objects([image.objects for image in data.images], len(names), seed=seed)
    return [
        matching_captions(data.names(image), names[missing], articles=articles, image=i)
        for i, (image, missing) in enumerate(zip(data.images, absent, strict=True))
    ]


def probe_image(
    models: Mapping[str, ModelSource | LoadedCLIP],
    data: ImageProbeData,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    l2: float = 1e-3,
    articles: bool = False,
    protocol: str = "ours",
    batch_size: int = 64,
    num_workers: int = 4,
    device: str | torch.device | None = None,
    hidden_act: str = "quick_gelu",
    num_heads: int | None = None,
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ImageProbeResults:
    """Run IOR, IOC and matching for each named model on ``data``.

    ``models`` maps a display name to anything ``load_clip_model`` reads (HF folder or Hub id,
    train_encoder export ``clip/`` folder, OpenAI-layout / Long-CLIP ``.pt``, ``open_clip:`` spec)
    or a ``LoadedCLIP`` (moved to ``device`` and kept); they are loaded one at a time, after every
    setting has been checked. ``hidden_act`` and ``num_heads`` are passed to the reader for
    checkpoint files (``gelu`` for LAION open_clip weights; text heads when not ``width // 64``). With ``output_dir`` the reports are written atomically.
    ``protocol="paper"`` follows clip-oscope's code where it differs from ours: images are converted to
    RGB before the model's transform, and the matching pairs are :func:`.matching.paper_matching_captions`
    (IOR and IOC unchanged; see docs/image-probes.md).

    Args:
        models: display name -> model source or ``LoadedCLIP`` (see above).
        data: images in slot order with their references (``shapes_world_data``, ``read_image_folder``).
        seed, test_fraction: the IOC train / test split.
        l2: the linear probes' L2 penalty.
        articles: "a" / "an" before object names in the matching captions.
        protocol: ``"ours"`` or ``"paper"`` (see above).
        batch_size, num_workers: image batching.
        device: where models run (default: CUDA when available).
        hidden_act, num_heads: passed to the checkpoint reader (see above).
        output_dir, overwrite: where the reports go, and whether an existing folder may be replaced.
        progress: show progress bars.
    """
    if not models:
        raise ProbeConfigError("give at least one CLIP model to probe")
    for name in models:
        if not isinstance(name, str) or not name.strip():
            raise ProbeConfigError(f"model names must be non-empty strings, got {name!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ProbeConfigError(f"batch size must be a positive integer, got {batch_size!r}")
    if l2 < 0:
        raise ProbeConfigError(f"l2 must be non-negative, got {l2}")
    if protocol not in IMAGE_PROTOCOLS:
        raise ProbeConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(IMAGE_PROTOCOLS)}")
    if protocol == "paper" and articles:
        raise ProbeConfigError("the paper protocol's captions have no articles ('cat and dog'); drop articles")
    try:
        split_indices(len(data.images), test_fraction=test_fraction, seed=seed)
    except ValueError as err:
        raise ProbeConfigError(f"cannot split the images for the classification probe (IOC): {err}") from err
    if output_dir is not None:
        check_output_dir(output_dir, overwrite)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    settings = ImageProbeSettings(
        source=data.source, vocabulary=data.vocabulary.name, vocabulary_size=len(data.vocabulary),
        num_objects=data.num_objects, num_images=len(data.images), slot_order=data.slot_order, seed=seed,
        test_fraction=test_fraction, l2=l2, articles=articles, protocol=protocol,
    )  # fmt: skip
    captions = build_matching_captions(data, seed=seed, articles=articles, protocol=protocol)
    paper = protocol == "paper"
    image_items = [_rgb(i.image) if paper else i.image for i in data.images]
    reference_items = [_rgb(r) for r in data.references] if paper else data.references
    loader = _load_rgb if paper else load_image
    results = []
    for name, source in tqdm(list(models.items()), desc="models", disable=not progress):
        clip = (
            source
            if isinstance(source, LoadedCLIP)
            else load_clip_model(source, hidden_act=hidden_act, num_heads=num_heads)
        )
        clip.model.to(device)
        embed = dict(batch_size=batch_size, progress=progress)
        references = encode_images(clip, reference_items, num_workers=num_workers, loader=loader,
                                   desc=f"{name}: references", **embed)  # fmt: skip
        images = encode_images(clip, image_items, num_workers=num_workers, loader=loader,
                               desc=f"{name}: images", **embed)  # fmt: skip
        results.append(_measure(name, clip, data, captions, references, images, settings, embed, progress))
        if not isinstance(source, LoadedCLIP):
            del clip
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    probed = ImageProbeResults(settings, data.vocabulary, data.images, tuple(captions), tuple(results))
    if output_dir is not None:
        write_report(probed, output_dir, overwrite=overwrite)
    return probed


def _rgb(item):
    """clip-oscope opens images with ``.convert("RGB")`` before the model's transform."""
    return item.convert("RGB") if isinstance(item, Image.Image) else item


def _load_rgb(path) -> Image.Image:
    return load_image(path).convert("RGB")


def _measure(
    name: str,
    clip: LoadedCLIP,
    data: ImageProbeData,
    captions: list[MatchingCaptions],
    references: torch.Tensor,
    images: torch.Tensor,
    settings: ImageProbeSettings,
    embed: dict,
    progress: bool,
) -> ModelImageProbeResult:
    objects = torch.tensor([image.objects for image in data.images], dtype=torch.long)
    similarity = ior_similarity(images, references)
    ior, ior_all = ior_metric(similarity, objects), ior_diagnostics(similarity, objects)
    ioc = ioc_probe(images, objects, len(data.vocabulary), test_fraction=settings.test_fraction,
                    seed=settings.seed, l2=settings.l2, progress=progress)  # fmt: skip
    texts = [text for c in captions for text in (c.right_1, c.wrong_1, c.right_2, c.wrong_2)]
    unique = list(dict.fromkeys(texts))  # the paper's pairs repeat each right caption once per absent object
    row = {text: i for i, text in enumerate(unique)}
    embedded = encode_text_features(clip, unique, desc=f"{name}: captions", **embed)
    text_embeddings = embedded[torch.tensor([row[t] for t in texts], dtype=torch.long)].view(len(captions), 4, -1)
    owners = torch.tensor([c.image for c in captions], dtype=torch.long)
    scores = torch.einsum("id,ikd->ik", images[owners].double(), text_embeddings.double())
    matching = MatchingResult(
        matching_accuracy(scores[:, 0], scores[:, 1]), matching_accuracy(scores[:, 2], scores[:, 3])
    )
    return ModelImageProbeResult(
        name=name, source=clip.source, identity=clip.identity, context_length=clip.context_length,
        image_size=clip.preprocessing.image_size, ior=ior, ior_all=ior_all, ioc=ioc, matching=matching,
    )  # fmt: skip
