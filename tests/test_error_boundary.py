"""The command lines' error boundary: foreign exceptions become one ``error:`` line, never a traceback."""

from __future__ import annotations

import errno
import json
import pickle
import re

import pytest
import yaml
from safetensors import SafetensorError

from debias_diffusion import cli
from debias_diffusion.error_boundary import DEBUG_ENV, describe_error, run_guarded
from debias_diffusion.errors import PromptError
from train_encoder import cli as train_cli


def _raise(err: BaseException):
    def run() -> int:
        raise err

    return run


def _json_error() -> json.JSONDecodeError:
    try:
        json.loads('{"a": ')
    except json.JSONDecodeError as err:
        return err
    raise AssertionError("json accepted a broken document")


def _yaml_error() -> yaml.YAMLError:
    try:
        yaml.safe_load("a: [1")
    except yaml.YAMLError as err:
        return err
    raise AssertionError("yaml accepted a broken document")


@pytest.mark.parametrize(
    ("err", "message"),
    [
        (PromptError("prompt is empty"), "^prompt is empty$"),
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/out/seed-0.png"),
            "^/data/out/seed-0.png: no space left on the device; free",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/out"),
            "^/ro/out: permission denied; check the permissions",
        ),
        (OSError(errno.EROFS, "Read-only file system", "/mnt/cd"), "^/mnt/cd: the file system is read-only"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "/tmp"), "^/tmp: is a folder where a file was expected"),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "x.pt"),
            "^x.pt: no such file or folder; check the path",
        ),
        (OSError(errno.EIO, "Input/output error", "/dev/sdz"), "^/dev/sdz: Input/output error$"),
        (OSError("Can't load the model for 'x/y'. Make sure ..."), "^Can't load the model for 'x/y'"),
        (_json_error(), r"^malformed JSON \(Expecting value at line 1, column 7\)"),
        (_yaml_error(), "^malformed YAML"),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), "not UTF-8 text"),
        (
            SafetensorError("Error while deserializing header: HeaderTooLarge"),
            "^not a readable safetensors file .*HeaderTooLarge",
        ),
        (pickle.UnpicklingError("invalid load key, 'x'."), "^not a readable PyTorch checkpoint .*invalid load key"),
        (EOFError("Ran out of input"), "^not a readable PyTorch checkpoint"),
        (KeyError("_class_name"), "^an input is missing the entry '_class_name'"),
        (
            ValueError("num_inference_steps must be at most 1000\nsecond line"),
            "^num_inference_steps must be at most 1000$",
        ),
        (RuntimeError("Found no NVIDIA driver on your system."), "^the torch device cannot be used .*--device cpu"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "^out of memory on the device"),
        (
            RuntimeError("\"LayerNormKernelImpl\" not implemented for 'Half'"),
            "^this device cannot compute in that dtype .*--dtype float32",
        ),
        (MemoryError(), "^out of memory"),
        (
            ModuleNotFoundError("No module named 'sam2'", name="sam2"),
            r"^a required package is missing or broken \(sam2\)",
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else None,
)
def test_user_caused_errors_become_one_specific_line(err, message, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert re.search(message, describe_error(err))
    assert run_guarded(_raise(err)) == 2
    printed = capsys.readouterr().err
    assert printed.startswith("error: ") and printed.count("\n") == 1 and "Traceback" not in printed


def test_an_internal_bug_is_one_line_exit_1_and_points_to_debug(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert describe_error(ZeroDivisionError("division by zero")) is None
    assert run_guarded(_raise(ZeroDivisionError("division by zero"))) == 1
    printed = capsys.readouterr().err
    assert printed.startswith("internal error: ZeroDivisionError: division by zero (re-run with --debug")
    assert "Traceback" not in printed


def test_ctrl_c_exits_130_without_a_traceback(capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert run_guarded(_raise(KeyboardInterrupt())) == 130
    assert capsys.readouterr().err.startswith("interrupted:")


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_debug_environment_variable_reraises(value, monkeypatch):
    monkeypatch.setenv(DEBUG_ENV, value)
    with pytest.raises(ZeroDivisionError):
        run_guarded(_raise(ZeroDivisionError()))


@pytest.mark.parametrize(
    "argv",
    [["--debug", "count-tokens", "@"], ["count-tokens", "@", "--debug"]],
    ids=["before the command", "after the command"],
)
def test_debug_flag_shows_the_traceback_of_either_command_line(argv, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(PromptError, match="must be followed by a file name"):
        cli.main(argv)


def test_train_encoder_debug_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    missing = str(tmp_path / "missing.yaml")
    assert train_cli.main(["train", "--config", missing, "--print-config"]) == 2
    assert capsys.readouterr().err.startswith("error: config file")
    with pytest.raises(ValueError, match="does not exist"):
        train_cli.main(["train", "--config", missing, "--print-config", "--debug"])


def test_interrupted_command_exits_130(monkeypatch, capsys):
    monkeypatch.delenv(DEBUG_ENV, raising=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("debias_diffusion.tokenization.build_clip_tokenizer", interrupted)
    assert cli.main(["count-tokens", "a cat"]) == 130
    assert "Traceback" not in capsys.readouterr().err
