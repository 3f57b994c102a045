"""The record of one measured image of a late-detail run (what the metrics and reports read)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LateDetailRecord"]


@dataclass(frozen=True)
class LateDetailRecord:
    """The target (and anchor) measured in one image: a mention prompt or its no-mention control."""

    condition: str
    """Display name of the encoder + long-prompt policy that made the image."""
    window: int
    """Positions the condition's encoder reads in one pass (77, 248, ...)."""
    policy: str
    """The long-prompt policy the condition generated with (truncate / chunk / error)."""
    item: int
    target: str
    anchor: str | None
    offset: int
    """The requested offset (start token = 0) of the target's mention; the control's too."""
    mentioned: bool
    """False for the no-mention control."""
    seed: int
    image: str
    """The image's path relative to the run's output folder."""
    mention_offset: int
    """Where the mention starts in this condition's own tokenizer (the control: where it would start)."""
    conditioned: bool
    """The condition's encoder read the whole mention (False: cut by truncation, or past the window)."""
    present: bool
    area: float
    score: float
    anchor_present: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
