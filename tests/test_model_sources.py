"""resolve_source: one reading of every kind of model source, the Hub's errors, revision passed to every Hub call.

Nothing here touches the network: the Hub download function is replaced by one that records its calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub
import pytest
import torch
from clip_builders import TEXT_HEADS, tiny_openai_clip
from huggingface_hub.errors import HFValidationError

from debias_diffusion import load_clip_model, load_text_encoder
from debias_diffusion.conversion import read_clip_source
from debias_diffusion.errors import CheckpointError, ModelNotFoundError
from debias_diffusion.model_sources import ResolvedSource, SourceKind, hub_call, resolve_source


class FakeHub:
    """Stands in for ``huggingface_hub.hf_hub_download``: serves files from ``files`` and records every call."""

    def __init__(self, files: dict[str, Path] | None = None) -> None:
        self.files = files or {}
        self.calls: list[tuple[str, str, str | None]] = []

    def __call__(self, repo_id: str, filename: str, *, revision: str | None = None, **_) -> str:
        self.calls.append((repo_id, filename, revision))
        if filename not in self.files:
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"{repo_id}/{filename} is not in the cache")
        return str(self.files[filename])


@pytest.fixture
def fake_hub(monkeypatch):
    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    return hub


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hub") / "clip.pt"
    torch.save(tiny_openai_clip(77).state_dict(), path)
    return path


def test_modules_and_open_clip_specs():
    module = torch.nn.Linear(2, 2)
    resolved = resolve_source(module)
    assert resolved.kind is SourceKind.MODULE and resolved.module is module
    assert resolved.label == "<in-memory Linear>"
    spec = resolve_source("open_clip:ViT-B-32/openai")
    assert spec.kind is SourceKind.OPEN_CLIP_SPEC and spec.label == "open_clip:ViT-B-32/openai"


def test_folders_pipeline_folders_and_files(tmp_path):
    assert resolve_source(tmp_path).kind is SourceKind.FOLDER
    (tmp_path / "model_index.json").write_text("{}")
    assert resolve_source(str(tmp_path)) == ResolvedSource(SourceKind.PIPELINE_FOLDER, str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert resolve_source(tmp_path / "weights.bin").kind is SourceKind.FILE
    # a checkpoint name in an existing folder is a (missing) local file, not a Hub id
    missing = resolve_source(tmp_path / "missing.safetensors", revision="v1")
    assert missing == ResolvedSource(SourceKind.FILE, str(tmp_path / "missing.safetensors"))


def test_hub_repos_and_files_keep_the_revision():
    repo = resolve_source("owner/name", revision="v1")
    assert repo == ResolvedSource(SourceKind.HUB_REPO, "owner/name", revision="v1")
    file = resolve_source("owner/name/sub/clip.pt", revision="abc123")
    assert (file.kind, file.name, file.filename, file.revision) == (
        SourceKind.HUB_FILE,
        "owner/name",
        "sub/clip.pt",
        "abc123",
    )
    assert file.label == "owner/name/sub/clip.pt"
    assert resolve_source(file) is file


def test_local_only_reads_every_path_as_a_file():
    assert resolve_source("owner/name", hub=False) == ResolvedSource(SourceKind.FILE, "owner/name")
    with pytest.raises(CheckpointError, match="checkpoint file not found: owner/name"):
        read_clip_source("owner/name")


@pytest.mark.parametrize("source", ["just-a-name", "owner/", "/no-such-folder-here"])
def test_neither_a_path_nor_a_hub_id(source):
    with pytest.raises(ModelNotFoundError, match="is not an existing file or folder, nor a Hugging Face Hub id"):
        resolve_source(source)


@pytest.mark.parametrize(
    "failure", [OSError("connection refused"), HFValidationError("bad repo id"), ValueError("bad revision")]
)
def test_hub_failures_become_model_not_found(failure, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def fetch():
        raise failure

    with pytest.raises(ModelNotFoundError, match="check the id and your network") as caught:
        hub_call("owner/name/clip.pt", fetch)
    assert caught.value.__cause__ is failure


def test_offline_error_says_how_to_get_the_model(fake_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match=r"HF_HUB_OFFLINE is set.*`hf download owner/name`"):
        resolve_source("owner/name/clip.pt").checkpoint_file()


def test_files_of_a_hub_repo_are_downloaded_at_the_revision(fake_hub, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["CLIPModel"]}))
    fake_hub.files = {"config.json": tmp_path / "config.json"}
    repo = resolve_source("owner/name", revision="v2")
    assert repo.read_json("config.json") == {"architectures": ["CLIPModel"]}
    assert repo.read_json("preprocessor_config.json", required=False) is None
    assert not repo.has_file("model_index.json")
    assert repo.pretrained_kwargs() == {"revision": "v2"}
    assert {revision for _, _, revision in fake_hub.calls} == {"v2"}
    assert [name for _, name, _ in fake_hub.calls] == [
        "config.json",
        "preprocessor_config.json",
        "model_index.json",
    ]


def test_has_file_is_false_for_any_hub_failure(monkeypatch):
    class EntryMissing(Exception):  # like huggingface_hub's EntryNotFoundError: not an OSError
        pass

    def download(*args, **kwargs):
        raise EntryMissing("404")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    assert not resolve_source("owner/name").has_file("model_index.json")


def test_folder_json_files(tmp_path):
    folder = resolve_source(tmp_path)
    assert folder.pretrained_kwargs() == {"local_files_only": True}
    with pytest.raises(CheckpointError, match="has no config.json: not a Hugging Face model folder"):
        folder.read_json("config.json")
    assert folder.read_json("config.json", required=False) is None
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        folder.read_json("config.json")


def test_load_text_encoder_passes_the_revision_for_a_hub_file(fake_hub, tiny_checkpoint):
    fake_hub.files = {"weights/clip.pt": tiny_checkpoint}
    loaded = load_text_encoder("owner/name/weights/clip.pt", revision="v3", num_heads=TEXT_HEADS, stretch_to=248)
    assert fake_hub.calls == [("owner/name", "weights/clip.pt", "v3")]
    assert loaded.source == "owner/name/weights/clip.pt"
    assert loaded.context_length == 248 == loaded.tokenizer.model_max_length


def test_load_text_encoder_passes_the_revision_for_a_hub_repo(fake_hub):
    with pytest.raises(ModelNotFoundError, match="'owner/name' is not a local path and could not be fetched"):
        load_text_encoder("owner/name", revision="v4")
    assert fake_hub.calls == [("owner/name", "model_index.json", "v4"), ("owner/name", "config.json", "v4")]


def test_load_clip_model_passes_the_revision(fake_hub, tiny_checkpoint):
    fake_hub.files = {"clip.pt": tiny_checkpoint}
    loaded = load_clip_model("owner/name/clip.pt", revision="v5", num_heads=TEXT_HEADS)
    assert loaded.source == "owner/name/clip.pt" and loaded.context_length == 77
    with pytest.raises(ModelNotFoundError, match="'owner/name' is not a local path"):
        load_clip_model("owner/name", revision="v6")
    assert fake_hub.calls == [("owner/name", "clip.pt", "v5"), ("owner/name", "config.json", "v6")]


def test_load_clip_model_refuses_a_text_only_hub_repo(fake_hub, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["CLIPTextModelWithProjection"]}))
    fake_hub.files = {"config.json": tmp_path / "config.json"}
    with pytest.raises(CheckpointError, match="owner/name holds a CLIPTextModelWithProjection, not a CLIPModel"):
        load_clip_model("owner/name")


def test_load_clip_model_refuses_a_pipeline_folder(tmp_path):
    (tmp_path / "model_index.json").write_text("{}")
    with pytest.raises(CheckpointError, match="diffusers pipeline folder.*both towers"):
        load_clip_model(tmp_path)
