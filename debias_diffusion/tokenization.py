"""The CLIP BPE tokenizer, built offline from open_clip's vocabulary, and prompt-length helpers.

``build_clip_tokenizer`` derives ``vocab.json``/``merges.txt`` from the
``bpe_simple_vocab_16e6.txt.gz`` that ships inside open_clip, exactly as OpenAI's CLIP and the
Hugging Face CLIP checkpoints do, so no download is needed.

Text cleaning: open_clip (like OpenAI's CLIP) runs ``ftfy.fix_text``, ``html.unescape`` (twice)
and whitespace collapsing before lower-casing. The fast Hugging Face ``CLIPTokenizer`` only
applies NFC, whitespace collapsing and lower-casing, so on its own it differs from open_clip on
HTML entities ("&amp;"), curly quotes and apostrophes ("dog’s"), ligatures ("ﬁ"), full-width
letters, mojibake ("donâ€™t"), control characters and a few titlecase digraphs ("ǅ"). The
tokenizer built here (``OpenCLIPTokenizer``) runs open_clip's cleaning (``clean_text``) on every
string before encoding, so its ids equal open_clip's; pass ``clean=False`` for the stock class.
Special-token strings typed into a prompt ("<|endoftext|>") and the pad token ("!" for SD 2.x) are
tokenized as plain text (``split_special_tokens=True``), as open_clip does. Offsets returned with
``return_offsets_mapping`` refer to the cleaned text. A saved tokenizer records
``tokenizer_class: CLIPTokenizer`` so that any loader reads it; only
``OpenCLIPTokenizer.from_pretrained`` brings the cleaning back. One known difference remains:
open_clip turns its own special-token names typed into text ("<start_of_text>", "<end_of_text>")
into SOT/EOT ids, while here they are plain text.
"""

from __future__ import annotations

import atexit
import functools
import gzip
import html
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import ftfy
import transformers
from transformers import PreTrainedTokenizerBase

from .clip_constants import LONG_CLIP_CONTEXT_LENGTH
from .prompt_fitting import PromptTruncation, count_tokens, encoder_capacity, split_into_chunks, truncate_prompt
from .renamed import renamed_keywords

__all__ = [
    "OpenCLIPTokenizer",
    "PromptTruncation",
    "build_clip_tokenizer",
    "clean_text",
    "clip_vocab_path",
    "count_tokens",
    "encoder_capacity",
    "split_into_chunks",
    "truncate_prompt",
]

VOCAB_FILE_NAME = "bpe_simple_vocab_16e6.txt.gz"
BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
_NUM_MERGES = 49152 - 256 - 2
# transformers < 5 has a slow CLIPTokenizer and a CLIPTokenizerFast; 5.x aliases the latter.
_FAST_CLIP = getattr(transformers, "CLIPTokenizerFast", transformers.CLIPTokenizer)
_HAS_SLOW_CLIP = _FAST_CLIP is not transformers.CLIPTokenizer


_OPEN_CLIP_WORDS = r"""'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def clean_text(text: str) -> str:
    """open_clip's cleaning (ftfy, HTML unescaping, whitespace collapsing), without lower-casing."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return " ".join(text.split())


def _clean_input(value: Any) -> Any:
    """``clean_text`` applied to a string, or to every string inside lists/tuples of them."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_clean_input(item) for item in value)
    return value


class _SavesAsCLIPTokenizer:
    """Saves a folder that every transformers release and both CLIP tokenizer classes read.

    It records ``tokenizer_class: CLIPTokenizer`` (not this subclass), writes ``vocab.json`` and
    ``merges.txt`` beside ``tokenizer.json`` (transformers 5 writes only the latter; the slow
    ``CLIPTokenizer`` of transformers 4.x reads the former), and stores ``tokenizer.json``'s merges
    as ``"a b"`` strings, the one form tokenizers < 0.20 (transformers < 4.45) can read.
    Reloading with ``CLIPTokenizer``/``AutoTokenizer`` gives the stock class (no cleaning);
    ``OpenCLIPTokenizer.from_pretrained`` keeps it. Upload with ``push_to_hub()``, which saves
    through this method, rather than ``save_pretrained(..., push_to_hub=True)``.
    """

    def save_pretrained(self, save_directory, *args, **kwargs):
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        for name in saved:
            if str(name).endswith("tokenizer_config.json"):
                _rewrite_json(Path(name), _name_stock_class)
            elif str(name).endswith("tokenizer.json"):
                _rewrite_json(Path(name), _merges_as_strings)
        if self.is_fast and not any(str(name).endswith("vocab.json") for name in saved):
            # The BPE model itself writes both files, in the format the slow tokenizer reads.
            prefix = kwargs.get("filename_prefix")
            saved = (*saved, *self.backend_tokenizer.model.save(str(save_directory), prefix))
        return saved


def _rewrite_json(path: Path, change) -> None:
    content = json.loads(path.read_text(encoding="utf-8"))
    change(content)
    path.write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _name_stock_class(config: dict[str, Any]) -> None:
    config["tokenizer_class"] = "CLIPTokenizer"


def _merges_as_strings(tokenizer_json: dict[str, Any]) -> None:
    # tokenizers >= 0.20 writes [a, b] pairs; "a b" reads everywhere (CLIP's merges hold no spaces).
    model = tokenizer_json.get("model", {})
    model["merges"] = [" ".join(merge) if isinstance(merge, list) else merge for merge in model.get("merges", [])]


if _HAS_SLOW_CLIP:
    import regex  # a dependency of transformers < 5

    class OpenCLIPTokenizer(_SavesAsCLIPTokenizer, _FAST_CLIP):
        """Fast CLIP tokenizer that cleans text exactly like open_clip before encoding."""

        def _batch_encode_plus(self, batch_text_or_text_pairs, *args, **kwargs):
            batch = _clean_input(batch_text_or_text_pairs)
            return super()._batch_encode_plus(batch, *args, **kwargs)

    class OpenCLIPTokenizerSlow(_SavesAsCLIPTokenizer, transformers.CLIPTokenizer):
        """Slow (Python) CLIP tokenizer that cleans text exactly like open_clip before BPE."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # _tokenize runs whitespace_clean(self.fix_text(text)).lower(), then splits with
            # self.pat; drop its special-token alternatives, as open_clip has none for these.
            self.fix_text = clean_text
            self.pat = regex.compile(_OPEN_CLIP_WORDS, regex.IGNORECASE)
            self.cache = {}

else:

    class OpenCLIPTokenizer(_SavesAsCLIPTokenizer, transformers.CLIPTokenizer):
        """CLIP tokenizer that cleans text exactly like open_clip before encoding."""

        def _encode_plus(self, text, text_pair=None, *args, **kwargs):
            return super()._encode_plus(_clean_input(text), _clean_input(text_pair), *args, **kwargs)

    OpenCLIPTokenizerSlow = None


def clip_vocab_path() -> Path:
    """Path of the ``bpe_simple_vocab_16e6.txt.gz`` shipped inside open_clip.

    The package is located without being imported (importing open_clip imports torch).
    """
    spec = importlib.util.find_spec("open_clip")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / VOCAB_FILE_NAME
        if path.is_file():
            return path
    where = f" (looked in {', '.join(locations)})" if locations else ""
    raise FileNotFoundError(
        f"CLIP BPE vocabulary {VOCAB_FILE_NAME} not found{where}; "
        "install open_clip, which ships it: pip install open_clip_torch"
    )


@functools.lru_cache(maxsize=1)
def _clip_bpe() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """vocab.json and merges.txt contents of OpenAI's CLIP, derived from open_clip's file."""
    lines = gzip.decompress(clip_vocab_path().read_bytes()).decode("utf-8").split("\n")
    merges = tuple(tuple(line.split()) for line in lines[1 : _NUM_MERGES + 1])
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [char + "</w>" for char in byte_chars]
    tokens += ["".join(merge) for merge in merges] + [BOS_TOKEN, EOS_TOKEN]
    return {token: index for index, token in enumerate(tokens)}, merges


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP map from bytes to printable characters, in CLIP's vocabulary order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes, strict=True)}


@functools.lru_cache(maxsize=1)
def _clip_bpe_files() -> tuple[str, str]:
    """vocab.json and merges.txt written once per process (transformers < 5 reads files)."""
    vocab, merges = _clip_bpe()
    folder = Path(tempfile.mkdtemp(prefix="debias-diffusion-clip-bpe-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2", *(" ".join(merge) for merge in merges)]
    merges_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(vocab_file), str(merges_file)


@renamed_keywords(model_max_length="context_length")
def build_clip_tokenizer(
    context_length: int = LONG_CLIP_CONTEXT_LENGTH,
    *,
    pad_token: str = EOS_TOKEN,
    use_fast: bool = True,
    clean: bool = True,
) -> PreTrainedTokenizerBase:
    """CLIP's BPE tokenizer built offline, with ids equal to ``open_clip.tokenize``.

    ``pad_token`` is ``"<|endoftext|>"`` for SD 1.x and ``"!"`` (id 0, like open_clip's zero
    padding) for SD 2.x. ``use_fast=False`` asks for the slow Python tokenizer, which only
    transformers < 5 has. ``clean=False`` returns the stock transformers class (still with
    ``split_special_tokens=True``), which skips open_clip's ftfy/HTML cleaning (see the module
    docstring for what then differs).

    Args:
        context_length: token positions of the encoder it feeds, SOT and EOT included (77 for CLIP, 248 for
            Long-CLIP / DeBias-CLIP); the tokenizer's ``model_max_length``. ``model_max_length=`` is a deprecated
            spelling of it.
        pad_token: the padding token (``"<|endoftext|>"`` for SD 1.x, ``"!"`` for SD 2.x).
        use_fast: the fast (Rust) tokenizer; ``False`` needs transformers < 5.
        clean: open_clip's ftfy / HTML cleaning (``False``: the stock transformers class).
    """
    if isinstance(context_length, bool) or not isinstance(context_length, int):
        raise TypeError(f"context_length must be an int, got {type(context_length).__name__}")
    if context_length < 3:
        raise ValueError(f"context_length must be at least 3 (SOT, a token, EOT), got {context_length}")
    kwargs: dict[str, Any] = dict(
        model_max_length=context_length,  # transformers' name for the context length (its tokenizers' attribute)
        pad_token=pad_token,
        split_special_tokens=True,
    )
    if not use_fast:
        if OpenCLIPTokenizerSlow is None:
            raise ValueError(
                f"use_fast=False needs transformers < 5: transformers {transformers.__version__} "
                "ships only the fast (tokenizers-backed) CLIPTokenizer; use use_fast=True"
            )
        cls = OpenCLIPTokenizerSlow if clean else transformers.CLIPTokenizer
        return cls(*_clip_bpe_files(), **kwargs)
    if _HAS_SLOW_CLIP:
        cls = OpenCLIPTokenizer if clean else _FAST_CLIP
        return cls(*_clip_bpe_files(), **kwargs)
    vocab, merges = _clip_bpe()
    cls = OpenCLIPTokenizer if clean else transformers.CLIPTokenizer
    return cls(vocab=dict(vocab), merges=list(merges), **kwargs)
