"""Prompt-order prominence: generate the same objects in every prompt order and measure each one."""

from .measurement import Box, Detector, ObjectMeasurement, ProminenceRecord

__all__ = ["Box", "Detector", "ObjectMeasurement", "ProminenceRecord"]
