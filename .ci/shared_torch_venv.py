"""Create a fresh virtual environment that borrows torch from the running interpreter's environment.

Run it with the main ``.venv`` python: ``.venv/bin/python .ci/shared_torch_venv.py DEST``.
torch and its CUDA wheels (torch, torchvision, triton, nvidia-*, cuda-*) are GBs and minutes to
install, so they are linked, with their dist-info, into ``DEST/shared-torch/``, and a ``.pth`` file
puts that folder on ``sys.path`` AFTER the new environment's own site-packages. pip sees them as
installed (their requirements are resolved as usual) and installs everything else into DEST, where
it wins over anything shared. Nothing else of the main environment is visible, so the new one is
as fresh as a user's install, torch aside.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

SHARED_PREFIXES = ("torch", "torchvision", "triton", "nvidia-", "cuda-")


def _is_shared(name: str) -> bool:
    name = name.lower().replace("_", "-")
    return any(name == prefix or (prefix.endswith("-") and name.startswith(prefix)) for prefix in SHARED_PREFIXES)


def shared_entries() -> list[Path]:
    """Top-level site-packages entries (packages, modules, dist-info) of the shared distributions."""
    entries: set[Path] = set()
    for dist in importlib.metadata.distributions():
        if not _is_shared(dist.metadata["Name"]):
            continue
        root = Path(dist.locate_file(""))
        for file in dist.files or ():
            top = file.parts[0]
            if top not in ("..", "__pycache__") and not top.endswith(".pth"):
                entries.add(root / top)
    missing = [name for name in ("torch", "torchvision") if not any(p.name == name for p in entries)]
    if missing:
        raise SystemExit(
            f"error: {', '.join(missing)} not installed in {sys.prefix}; run this with the main .venv python"
        )
    return sorted(path for path in entries if path.exists())


def create(dest: Path) -> Path:
    """Create ``dest`` (replacing it) and return its python."""
    if dest.exists():
        shutil.rmtree(dest)
    venv.EnvBuilder(with_pip=True, symlinks=True).create(dest)
    shared = dest / "shared-torch"
    shared.mkdir()
    for entry in shared_entries():
        (shared / entry.name).symlink_to(entry)
    python = dest / "bin" / "python"
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    # .pth files run in name order, after site-packages itself is on sys.path: the shared folder comes last.
    (Path(purelib) / "zz_shared_torch.pth").write_text(f"{shared.resolve()}\n", encoding="utf-8")
    return python


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="folder of the new environment (replaced if it exists)")
    args = parser.parse_args()
    python = create(args.dest)
    print(f"{python} (torch shared from {sysconfig.get_path('purelib')})")


if __name__ == "__main__":
    main()
