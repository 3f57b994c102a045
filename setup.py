"""Package discovery; every other setting lives in pyproject.toml.

``pipelines/`` (one diffusers pipeline per file, each also a ``custom_pipeline=`` file) installs as
``debias_diffusion.pipelines``. pyproject.toml can either list packages by hand or discover them
from the folders' own names, not both, so the discovery that renames that one folder is here:
new subpackages anywhere are picked up without editing a list.
"""

from setuptools import find_packages, setup

PIPELINES = "debias_diffusion.pipelines"

setup(
    packages=[
        *find_packages(include=["debias_diffusion", "debias_diffusion.*", "train_encoder", "train_encoder.*"]),
        PIPELINES,
        *(f"{PIPELINES}.{name}" for name in find_packages("pipelines")),
    ],
    package_dir={PIPELINES: "pipelines"},
)
