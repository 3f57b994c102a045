"""TOR as the paper's code computes it (clip-oscope's ``TOR_*_CLIP.py``): ``probe_text(protocol="paper")``.

It differs from our protocol (:mod:`.retrieval`) in three ways, each reproduced here:

- **Captions**: every combination of ``num_objects`` vocabulary names, in vocabulary order
  (``itertools.combinations``), joined by ``" and "`` without articles: each unordered set once,
  always in list order, so an object's position follows its place in the list.
- **Qualification**: a caption qualifies when each of its ``n`` best-scoring names is a *substring*
  of the caption text ("dog" qualifies in "hot dog and cat and cup", "car" in "... and carrot").
- **Shares**: position ``k``'s share is (qualifying captions whose best-scoring name *is* the name at
  position ``k``) / (qualifying captions). A caption that qualifies through a substring may have a
  top-1 name that is none of its objects; it counts in the denominator only, so the shares of a
  row can sum to less than 100%.

The unconditional shares (top-1 at position ``k`` over *all* captions), which the script prints
second, are kept too. Similarities are computed in float64 from float32 unit embeddings; the top-1
is the lowest index among equal maxima (``np.argmax``). Captions are embedded and scored in chunks,
so ComCO's 2.5 M four-object captions never sit in memory at once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import ProbeConfigError
from ..loading import LoadedTextEncoder
from ..probing.retrieval import SlotRetrievalResult
from .captions import Caption, short_caption
from .embedding import LongTextPolicy, encode_pooled_texts
from .vocabulary import Vocabulary

__all__ = [
    "PROTOCOLS",
    "PaperTORResult",
    "PaperTORRun",
    "count_paper_captions",
    "paper_captions",
    "paper_tor",
    "paper_tor_counts",
]

PROTOCOLS: tuple[str, ...] = ("ours", "paper")
CHUNK_CAPTIONS = 8192


@dataclass(frozen=True)
class PaperTORResult(SlotRetrievalResult):
    """TOR under the paper's qualification; ``counts`` need not sum to ``qualified``."""

    unconditional_counts: tuple[int, ...]
    """All captions (qualifying or not) whose top-1 name is the one at each position."""

    @property
    def unconditional_shares(self) -> tuple[float, ...]:
        return tuple(c / self.total for c in self.unconditional_counts)

    def to_json(self) -> dict:
        return {**super().to_json(), "unconditional_counts": list(self.unconditional_counts),
                "unconditional_shares": list(self.unconditional_shares)}  # fmt: skip


@dataclass(frozen=True)
class PaperTORRun:
    """``paper_tor``'s result and how the encoder's context length treated the captions."""

    tor: PaperTORResult
    context_length: int
    projected: bool
    truncated_captions: int
    max_caption_tokens: int


def count_paper_captions(vocabulary_size: int, num_objects: int) -> int:
    """How many captions the paper's protocol makes: ``C(vocabulary_size, num_objects)``."""
    return math.comb(vocabulary_size, num_objects)


def paper_captions(vocabulary: Vocabulary, num_objects: int) -> Iterator[Caption]:
    """Every combination of ``num_objects`` names in vocabulary order, as ``"cat and dog and cup"``.

    The number of objects is checked here, before the (lazy) captions are made.
    """
    if isinstance(num_objects, bool) or not isinstance(num_objects, int) or num_objects < 2:
        raise ProbeConfigError(f"captions need an integer number of objects >= 2, got {num_objects!r}")
    if num_objects > len(vocabulary):
        raise ProbeConfigError(
            f"{num_objects} distinct objects per caption, but the vocabulary holds only {len(vocabulary)}"
        )
    names = vocabulary.objects
    return (
        Caption(short_caption([names[i] for i in objects]), objects)
        for objects in itertools.combinations(range(len(names)), num_objects)
    )


def paper_tor_counts(
    similarity: np.ndarray, captions: Sequence[Caption], names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per caption: does it qualify (substring rule), and the position of its top-1 name (-1: none).

    ``similarity`` is ``[captions, vocabulary]``; ``names`` are the vocabulary's names.
    """
    order = np.argsort(-np.asarray(similarity), axis=1, kind="stable")  # ties: lower index first, as np.argmax
    qualifies = np.zeros(len(captions), dtype=bool)
    position = np.full(len(captions), -1, dtype=np.int64)
    for i, (caption, ranked) in enumerate(zip(captions, order, strict=True)):
        top_n = ranked[: len(caption.objects)].tolist()
        qualifies[i] = all(names[j] in caption.text for j in top_n)
        if top_n[0] in caption.objects:
            position[i] = caption.objects.index(top_n[0])
    return qualifies, position


@torch.no_grad()
def paper_tor(
    encoder: LoadedTextEncoder,
    vocabulary: Vocabulary,
    num_objects: int,
    *,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    on_long: LongTextPolicy = "truncate",
    progress: bool = False,
    desc: str = "captions",
) -> PaperTORRun:
    """TOR over every combination of ``num_objects`` names (see the module docstring)."""
    captions = paper_captions(vocabulary, num_objects)
    total = count_paper_captions(len(vocabulary), num_objects)
    embed = dict(batch_size=batch_size, device=device, on_long=on_long)
    objects = encode_pooled_texts(encoder, list(vocabulary.objects), desc=f"{desc}: objects", **embed)
    object_embeddings = objects.embeddings.double()
    counts = np.zeros(num_objects, dtype=np.int64)
    unconditional = np.zeros(num_objects, dtype=np.int64)
    qualified = truncated = longest = 0
    with tqdm(total=total, desc=desc, disable=not progress, unit="caption") as bar:
        while chunk := list(itertools.islice(captions, CHUNK_CAPTIONS)):
            texts = encode_pooled_texts(encoder, [c.text for c in chunk], **embed)
            similarity = (texts.embeddings.double() @ object_embeddings.T).numpy()
            qualifies, position = paper_tor_counts(similarity, chunk, vocabulary.objects)
            placed = position >= 0
            counts += np.bincount(position[placed & qualifies], minlength=num_objects)
            unconditional += np.bincount(position[placed], minlength=num_objects)
            qualified += int(qualifies.sum())
            truncated += len(texts.truncated)
            longest = max(longest, *texts.token_counts)
            bar.update(len(chunk))
    shares = tuple(float(c) / qualified for c in counts) if qualified else None
    tor = PaperTORResult(shares, tuple(int(c) for c in counts), qualified, total, tuple(int(c) for c in unconditional))
    return PaperTORRun(tor, objects.context_length, objects.projected, truncated, longest)
