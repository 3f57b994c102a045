"""Push an export folder to the Hugging Face Hub (``export --push-to-hub REPO``)."""

from __future__ import annotations

import os
from pathlib import Path

from debias_diffusion.errors import HubUploadError

__all__ = ["check_can_push", "push_to_hub"]

_TRUE = {"1", "ON", "YES", "TRUE"}


def check_can_push(repo_id: str) -> None:
    """Refuse, before any expensive work, a push that cannot succeed: a malformed repo id, or offline mode."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubUploadError(
            f"--push-to-hub {repo_id!r} is not a Hub repo id (USER/NAME or ORG/NAME): {error}"
        ) from None
    if "/" not in repo_id:
        raise HubUploadError(f"--push-to-hub {repo_id!r} names no owner: give USER/NAME or ORG/NAME")
    if any(os.environ.get(name, "").upper() in _TRUE for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        raise HubUploadError(
            "cannot push to the Hub: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set. Unset it, or export without "
            f"--push-to-hub and upload later with `hf upload {repo_id} EXPORT_FOLDER`"
        )


def push_to_hub(folder: str | Path, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` (model card included) as one commit; return its URL."""
    from huggingface_hub import HfApi

    check_can_push(repo_id)
    folder = Path(folder)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        commit = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), commit_message="Upload debias-diffusion train_encoder export"
        )
    except (OSError, ValueError) as error:  # HfHubHTTPError and network errors are OSErrors
        raise HubUploadError(
            f"pushing {folder} to {repo_id} failed: {error}. The export itself is complete in {folder}: fix the cause "
            f"(login with `hf auth login`, network, repo permissions) and upload it with `hf upload {repo_id} {folder}`"
        ) from error
    return getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo_id}"
