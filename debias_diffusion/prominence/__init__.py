"""Prompt-order prominence: generate the same objects in every prompt order and measure each one.

Records (:mod:`.measurement`) feed the metrics (:mod:`.metrics`, numpy only) and the report
(:mod:`.report`: files, plots and image grids; imports matplotlib, so import it explicitly).
"""

from ..errors import ProminenceDataError
from .measurement import Box, Detector, ObjectMeasurement, ProminenceRecord
from .metrics import by_position, compare_models, first_mention_advantage, pair_order_effects, validate_records

__all__ = [
    "Box",
    "Detector",
    "ObjectMeasurement",
    "ProminenceDataError",
    "ProminenceRecord",
    "by_position",
    "compare_models",
    "first_mention_advantage",
    "pair_order_effects",
    "validate_records",
]
