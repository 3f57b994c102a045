"""Exceptions raised by debias-diffusion.

Every error names what was wrong and what to do about it. They subclass ``ValueError``
(bad input) or ``FileNotFoundError`` so callers that already catch those keep working.
"""

from __future__ import annotations


class DebiasDiffusionError(Exception):
    """Base class of every error this package raises on purpose."""


class PromptError(DebiasDiffusionError, ValueError):
    """A prompt is empty, not a string, or longer than the chosen policy allows."""


class CheckpointError(DebiasDiffusionError, ValueError):
    """A checkpoint file or folder cannot be read, has an unknown layout, or holds bad weights."""


class EncoderMismatchError(DebiasDiffusionError, ValueError):
    """A text encoder does not fit where it is being used (width, positions, layout)."""


class ModelNotFoundError(DebiasDiffusionError, FileNotFoundError):
    """A model is neither a local path nor reachable on (or cached from) the Hugging Face Hub."""


class OutputExistsError(DebiasDiffusionError, FileExistsError):
    """The output path already exists and overwriting was not asked for."""


class ProminenceDataError(DebiasDiffusionError, ValueError):
    """Prominence records cannot be analysed: empty, inconsistent within an image or object set, or out of range."""


class DetectorError(DebiasDiffusionError, ValueError):
    """A prominence detector name, option or input (images, labels) is not usable."""


class ProbeConfigError(DebiasDiffusionError, ValueError):
    """A text-probe setting is invalid: unknown or malformed vocabulary, too many objects, bad encoder spec."""


class UsageError(DebiasDiffusionError, ValueError):
    """A command-line argument is malformed (e.g. not NAME=VALUE, a name given twice)."""


class ShapesWorldError(DebiasDiffusionError, ValueError):
    """A shapes-world setting is invalid (counts, sizes, colours, resolution), or an export folder does not match."""


class BadImageError(DebiasDiffusionError, ValueError):
    """An image file is missing, truncated or undecodable: the message names the file."""


class OutputLockedError(DebiasDiffusionError, RuntimeError):
    """Another live run is writing the same output folder (see ``debias_diffusion.output_lock``)."""


class HubUploadError(DebiasDiffusionError, RuntimeError):
    """Pushing a folder to the Hugging Face Hub is impossible (offline, bad repo id) or failed."""


class DeviceError(DebiasDiffusionError, ValueError):
    """A torch device name is malformed, or that device is not available on this machine."""


class SettingError(DebiasDiffusionError, ValueError):
    """A numeric or choice setting is out of range (steps, image count, guidance, seed, size)."""
