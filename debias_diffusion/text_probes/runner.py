"""``probe_text``: TOR and TOC for several text encoders on the same captions, side by side."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import ProbeConfigError
from ..loading import LoadedTextEncoder, load_text_encoder
from ..pipeline_components import ENCODER_ALIASES
from ..probing.outputs import check_output_dir
from .captions import CAPTION_STYLES, Caption, CaptionStyle, build_captions, object_phrase
from .classification import split_indices, toc_probe
from .embedding import LONG_TEXT_POLICIES, LongTextPolicy, encode_pooled_texts
from .paper_protocol import PROTOCOLS, count_paper_captions, paper_captions, paper_tor
from .report import write_report
from .results import EncoderProbeResult, ProbeSettings, TextProbeResults
from .retrieval import tor_probe
from .vocabulary import Vocabulary, resolve_vocabulary

__all__ = ["EncoderSource", "probe_text"]

EncoderSource = str | os.PathLike | nn.Module | LoadedTextEncoder
"""Anything ``load_text_encoder`` accepts, the alias ``"longclip-l"``, or an already loaded encoder."""


def probe_text(
    encoders: Mapping[str, EncoderSource],
    vocabulary: str | Path | Vocabulary | Sequence[str] | None = None,
    *,
    protocol: str = "ours",
    num_objects: int = 4,
    captions: int | None = None,
    style: CaptionStyle = "short",
    seed: int = 0,
    articles: bool = False,
    summary: bool = False,
    test_fraction: float = 0.2,
    l2: float = 1e-3,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    on_long: LongTextPolicy = "truncate",
    output_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> TextProbeResults:
    """Run TOR and TOC for each named encoder on one set of seeded captions.

    Args:
        encoders: display name -> source (folder, checkpoint, Hub id, ``open_clip:`` spec,
            ``"longclip-l"``, or a ``LoadedTextEncoder``, which is moved to ``device`` and kept);
            they are loaded one at a time.
        vocabulary: ``"coco"``, ``"comco"``, ``"simco"``, ``"shapes"``, a ``.txt``/``.json``/``.yaml``
            path, a ``Vocabulary`` or a list of names; ``None``: ``"coco"`` (ours), ``"comco"`` (paper).
        protocol: ``"ours"`` (seeded ordered captions, exact top-n qualification, TOR and TOC) or
            ``"paper"`` (clip-oscope's TOR: every combination in vocabulary order, substring
            qualification; no TOC; ``captions``, ``style``, ``articles``, ``summary`` do not apply).
        num_objects: objects per caption (2..5 in the paper).
        captions: number of captions under our protocol (default 1000).
        style: ``"short"`` (``"cat and dog and ..."``) or ``"long"`` (one sentence per object).
        seed: seed of the captions and of the TOC train/test split.
        articles: ``"a cat and a dog"`` instead of ``"cat and dog"``.
        summary: long style only: start with a summary sentence that names no object.
        test_fraction: share of the captions held out to test the TOC probes.
        l2: the TOC probes' L2 penalty.
        batch_size: texts per forward pass.
        device: where the encoders run (``None``: CUDA when available, else CPU).
        on_long: captions longer than an encoder: ``"truncate"`` (cut to its first tokens as CLIP does, counted
            in the report) or ``"error"``.
        output_dir: write the reports here (see below); ``None``: return the results only.
        overwrite: replace ``output_dir`` when it is not empty.
        progress: show progress bars.

    Every setting is checked before any encoder is loaded. With ``output_dir`` the reports
    (``results.json``, ``table.md``, ``captions.jsonl``) are written there atomically.
    """
    if not encoders:
        raise ProbeConfigError("give at least one encoder to probe")
    for name in encoders:
        if not isinstance(name, str) or not name.strip():
            raise ProbeConfigError(f"encoder names must be non-empty strings, got {name!r}")
    if on_long not in LONG_TEXT_POLICIES:
        raise ProbeConfigError(
            f"unknown long-caption policy {on_long!r}; choose one of {', '.join(LONG_TEXT_POLICIES)}"
        )
    if style not in CAPTION_STYLES:
        raise ProbeConfigError(f"unknown caption style {style!r}; choose one of {', '.join(CAPTION_STYLES)}")
    if summary and style != "long":
        raise ProbeConfigError("a summary sentence only exists in the long caption style (style='long')")
    if batch_size < 1:
        raise ProbeConfigError(f"batch size must be at least 1, got {batch_size}")
    if l2 < 0:
        raise ProbeConfigError(f"l2 must be non-negative, got {l2}")
    if protocol not in PROTOCOLS:
        raise ProbeConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    paper = protocol == "paper"
    vocab = resolve_vocabulary(vocabulary if vocabulary is not None else ("comco" if paper else "coco"))
    if paper:
        _check_paper_settings(captions, style, articles, summary)
        paper_captions(vocab, num_objects)  # checks the number of objects (the captions are made lazily)
        caption_list, num_captions = [], count_paper_captions(len(vocab), num_objects)
    else:
        caption_list = build_captions(
            vocab, num_objects=num_objects, count=1000 if captions is None else captions, style=style, seed=seed,
            articles=articles, summary=summary,
        )  # fmt: skip
        num_captions = len(caption_list)
        try:
            split_indices(len(caption_list), test_fraction=test_fraction, seed=seed)
        except ValueError as err:
            raise ProbeConfigError(f"cannot split the captions for the classification probe: {err}") from err
    if output_dir is not None:
        check_output_dir(output_dir, overwrite)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    settings = ProbeSettings(
        vocabulary=vocab.name, vocabulary_size=len(vocab), num_objects=num_objects, num_captions=num_captions,
        style=style, articles=articles, summary=summary, seed=seed, test_fraction=test_fraction, l2=l2,
        on_long=on_long, protocol=protocol,
    )  # fmt: skip
    common = dict(vocabulary=vocab, settings=settings, batch_size=batch_size, device=device, progress=progress)
    if protocol == "paper":
        measure = partial(_measure_paper, **common)
    else:
        object_texts = [object_phrase(name, articles=articles) for name in vocab.objects]
        measure = partial(_measure_ours, captions=caption_list, object_texts=object_texts, **common)
    results = []
    for name, source in tqdm(list(encoders.items()), desc="encoders", disable=not progress):
        results.append(_probe_one(name, source, measure))
    probed = TextProbeResults(settings, vocab, tuple(caption_list), tuple(results))
    if output_dir is not None:
        write_report(probed, output_dir, overwrite=overwrite)
    return probed


def _probe_one(
    name: str, source: EncoderSource, measure: Callable[[str, LoadedTextEncoder], EncoderProbeResult]
) -> EncoderProbeResult:
    """Load one encoder, measure it, and free it unless the caller passed it in loaded."""
    encoder = _load(source)
    result = measure(name, encoder)
    if not isinstance(source, LoadedTextEncoder):
        del encoder
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return result


def _measure_ours(
    name: str,
    encoder: LoadedTextEncoder,
    *,
    vocabulary: Vocabulary,
    captions: list[Caption],
    object_texts: list[str],
    settings: ProbeSettings,
    batch_size: int,
    device: str | torch.device,
    progress: bool,
) -> EncoderProbeResult:
    embed = dict(batch_size=batch_size, device=device, on_long=settings.on_long, progress=progress)
    objects = encode_pooled_texts(encoder, object_texts, desc=f"{name}: objects", **embed)
    texts = encode_pooled_texts(encoder, [c.text for c in captions], desc=f"{name}: captions", **embed)
    caption_objects = torch.tensor([c.objects for c in captions], dtype=torch.long)
    tor = tor_probe(texts.embeddings, objects.embeddings, caption_objects)
    toc = toc_probe(
        texts.embeddings, caption_objects, len(vocabulary), test_fraction=settings.test_fraction,
        seed=settings.seed, l2=settings.l2, progress=progress, desc="TOC probes",
    )  # fmt: skip
    return EncoderProbeResult(
        name=name, source=encoder.source, context_length=texts.context_length, projected=texts.projected,
        truncated_captions=len(texts.truncated), max_caption_tokens=max(texts.token_counts), tor=tor, toc=toc,
    )  # fmt: skip


def _measure_paper(
    name: str,
    encoder: LoadedTextEncoder,
    *,
    vocabulary: Vocabulary,
    settings: ProbeSettings,
    batch_size: int,
    device: str | torch.device,
    progress: bool,
) -> EncoderProbeResult:
    run = paper_tor(
        encoder, vocabulary, settings.num_objects, batch_size=batch_size, device=device, on_long=settings.on_long,
        progress=progress, desc=name,
    )  # fmt: skip
    return EncoderProbeResult(
        name=name, source=encoder.source, context_length=run.context_length, projected=run.projected,
        truncated_captions=run.truncated_captions, max_caption_tokens=run.max_caption_tokens, tor=run.tor, toc=None,
    )  # fmt: skip


def _check_paper_settings(captions: int | None, style: str, articles: bool, summary: bool) -> None:
    """The paper's captions are fixed: refuse settings that would silently not apply."""
    if captions is not None:
        raise ProbeConfigError(
            "the paper protocol captions every combination of the vocabulary (C(size, objects) captions); "
            "drop the number of captions, or use protocol 'ours' to sample them"
        )
    if style != "short" or articles or summary:
        raise ProbeConfigError(
            "the paper protocol uses the short style without articles ('cat and dog and cup'); drop "
            "style / articles / summary, or use protocol 'ours'"
        )


def _load(source: EncoderSource) -> LoadedTextEncoder:
    if isinstance(source, LoadedTextEncoder):
        return source
    if isinstance(source, (str, os.PathLike)):
        source = ENCODER_ALIASES.get(str(source).lower(), source)
    return load_text_encoder(source)
