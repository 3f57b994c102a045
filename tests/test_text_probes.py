"""Text probes (TOR / TOC): metrics on hand-made inputs, captions, vocabularies, embeddings, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from clip_builders import open_clip_text_outputs, tiny_openai_clip

from debias_diffusion import load_text_encoder
from debias_diffusion.cli import main
from debias_diffusion.conversion import convert_to_hf
from debias_diffusion.errors import ProbeConfigError, PromptError
from debias_diffusion.sentences import split_sentences
from debias_diffusion.text_probes import (
    COCO_OBJECTS,
    Vocabulary,
    build_captions,
    coco_vocabulary,
    encode_pooled_texts,
    fit_linear_probe,
    probe_text,
    read_vocabulary,
    resolve_vocabulary,
    sample_object_sets,
    shapes_vocabulary,
    split_indices,
    toc_probe,
    tor_metric,
    tor_probe,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")


# --- TOR metric --------------------------------------------------------------------------------


def test_tor_two_objects_hand_computed():
    similarity = [
        [0.9, 0.8, 0.1, 0.2],  # objects (0, 1): top-2 {0, 1} qualifies, top-1 = 0 -> position 1
        [0.1, 0.2, 0.7, 0.9],  # objects (2, 3): top-2 {3, 2} qualifies, top-1 = 3 -> position 2
        [0.9, 0.8, 0.7, 0.1],  # objects (0, 2): top-2 {0, 1} != {0, 2} -> left out
        [0.1, 0.6, 0.2, 0.5],  # objects (1, 3): top-2 {1, 3} qualifies, top-1 = 1 -> position 1
    ]
    result = tor_metric(np.array(similarity), np.array([[0, 1], [2, 3], [0, 2], [1, 3]]))
    assert (result.qualified, result.total) == (3, 4)
    assert result.counts == (2, 1)
    assert result.shares == pytest.approx((2 / 3, 1 / 3))


def test_tor_three_objects_hand_computed():
    similarity = torch.tensor(
        [
            [0.1, 0.5, 0.6, 0.0, 0.55],  # objects (4, 1, 2): top-3 2, 4, 1 qualifies; top-1 = 2 -> position 3
            [0.3, 0.9, 0.2, 0.25, 0.1],  # objects (0, 1, 2): top-3 1, 0, 3 -> left out
            [0.8, 0.0, 0.0, 0.7, 0.6],  # objects (3, 0, 4): top-3 0, 3, 4 qualifies; top-1 = 0 -> position 2
        ]
    )
    result = tor_metric(similarity, torch.tensor([[4, 1, 2], [0, 1, 2], [3, 0, 4]]))
    assert (result.qualified, result.total) == (2, 3)
    assert result.counts == (0, 1, 1)
    assert result.shares == pytest.approx((0.0, 0.5, 0.5))
    assert sum(result.shares) == pytest.approx(1.0)


def test_tor_ties_go_to_the_lower_index_and_no_qualifier_gives_none():
    # Index 0 and 1 tie behind index 2: the stable order ranks 0 before 1.
    tied = np.array([[0.5, 0.5, 0.9], [0.5, 0.5, 0.9]])
    result = tor_metric(tied, np.array([[2, 0], [1, 2]]))
    assert (result.qualified, result.counts) == (1, (1, 0))
    nobody = tor_metric(np.array([[0.9, 0.8, 0.1]]), np.array([[2, 1]]))
    assert nobody.qualified == 0 and nobody.shares is None and nobody.counts == (0, 0)
    assert nobody.to_json()["shares"] is None


def test_tor_rejects_malformed_inputs():
    with pytest.raises(ValueError, match="distinct"):
        tor_metric(np.zeros((1, 3)), np.array([[1, 1]]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        tor_metric(np.zeros((1, 3)), np.array([[0, 3]]))
    with pytest.raises(ValueError, match="rows"):
        tor_metric(np.zeros((2, 3)), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="NaN"):
        tor_metric(np.array([[np.nan, 0.0, 1.0]]), np.array([[0, 1]]))


def test_tor_probe_uses_cosine_similarity():
    objects = torch.eye(4)
    # Caption 0 leans to object 1 then 0; caption 1 to object 3 then 2.
    captions = torch.nn.functional.normalize(torch.tensor([[0.6, 0.8, 0.0, 0.0], [0.0, 0.0, 0.5, 0.9]]), dim=1)
    result = tor_probe(captions, objects, torch.tensor([[0, 1], [2, 3]]))
    assert result.counts == (0, 2) and result.qualified == 2


# --- TOC probe --------------------------------------------------------------------------------


def _synthetic(seed: int = 0, count: int = 600, classes: int = 6, width: int = 12):
    """Positions 1 and 3 are written into the features linearly; position 2 is not in them at all."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (count, 3), generator=g)
    first, third = torch.randn(classes, width, generator=g), torch.randn(classes, width, generator=g)
    features = 3 * first[labels[:, 0]] + 3 * third[labels[:, 2]] + torch.randn(count, width, generator=g)
    return torch.nn.functional.normalize(features, dim=1), labels


def test_toc_reads_encoded_positions_and_not_the_missing_one():
    features, labels = _synthetic()
    result = toc_probe(features, labels, 6, test_fraction=0.25, seed=0)
    assert (result.train_size, result.test_size) == (450, 150)
    assert result.chance == pytest.approx(1 / 6)
    assert result.accuracies[0] > 0.95 and result.accuracies[2] > 0.95
    assert result.accuracies[1] < 0.35
    assert len(result.majority) == 3 and all(m < 0.35 for m in result.majority)


def test_toc_is_seeded_and_deterministic():
    features, labels = _synthetic(seed=1, count=200)
    first = toc_probe(features, labels, 6, seed=3)
    assert toc_probe(features, labels, 6, seed=3) == first
    train_a, test_a = split_indices(200, test_fraction=0.2, seed=3)
    train_b, test_b = split_indices(200, test_fraction=0.2, seed=4)
    assert not torch.equal(test_a, test_b)
    assert sorted(torch.cat([train_a, test_a]).tolist()) == list(range(200)) and len(test_a) == 40
    with pytest.raises(ValueError, match="fewer than 2"):
        split_indices(2, test_fraction=0.5, seed=0)


def test_linear_probe_fits_a_separable_problem():
    x = torch.tensor([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [0.0, 5.0], [0.0, 5.1]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    probe = fit_linear_probe(x, y, 3)
    assert probe.predict(x).tolist() == y.tolist()
    assert probe.predict(torch.tensor([[5.2, 4.9], [-0.2, 5.3]])).tolist() == [1, 2]


# --- vocabularies and captions -------------------------------------------------------------------


def test_builtin_vocabularies(clip_tokenizer):
    assert len(coco_vocabulary()) == 80 == len(set(COCO_OBJECTS))
    shapes = shapes_vocabulary()
    assert len(shapes) == 64 == len(set(shapes.objects)) and shapes.objects[0] == "red cube"
    words = {word for name in shapes.objects for word in name.split()}
    assert all(len(clip_tokenizer.tokenize(word)) == 1 for word in words)


def test_user_vocabulary_files(tmp_path):
    (tmp_path / "objects.txt").write_text("# fruit\ncat\n\n  teddy   bear \ndog\n")
    assert read_vocabulary(tmp_path / "objects.txt") == Vocabulary("objects", ("cat", "teddy bear", "dog"))
    (tmp_path / "v.yaml").write_text("objects: [cube, ball]\n")
    assert resolve_vocabulary(str(tmp_path / "v.yaml")).objects == ("cube", "ball")
    (tmp_path / "dup.txt").write_text("cat\ndog\nCat\n")
    with pytest.raises(ProbeConfigError, match=r"line 3 \('Cat'\) duplicates line 1"):
        read_vocabulary(tmp_path / "dup.txt")
    (tmp_path / "empty.json").write_text('["cat", "  ", "dog"]')
    with pytest.raises(ProbeConfigError, match="item 2 is empty"):
        read_vocabulary(tmp_path / "empty.json")
    (tmp_path / "one.json").write_text('["cat"]')
    with pytest.raises(ProbeConfigError, match="at least 2"):
        read_vocabulary(tmp_path / "one.json")
    with pytest.raises(ProbeConfigError, match="unknown vocabulary 'animals'"):
        resolve_vocabulary("animals")


def test_short_captions_keep_order_and_are_seeded():
    vocab = coco_vocabulary()
    captions = build_captions(vocab, num_objects=3, count=50, style="short", seed=7)
    assert captions == build_captions(vocab, num_objects=3, count=50, style="short", seed=7)
    assert captions != build_captions(vocab, num_objects=3, count=50, style="short", seed=8)
    assert len({c.objects for c in captions}) == 50
    for caption in captions:
        assert len(set(caption.objects)) == 3
        assert caption.text == " and ".join(vocab.objects[i] for i in caption.objects)
    custom = Vocabulary("x", ("cat", "apple", "teapot"))
    sets = sample_object_sets(3, 3, 6, seed=0)
    assert sorted(sets) == sorted(
        [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    )  # every ordering, once
    with_articles = build_captions(custom, num_objects=3, count=6, seed=0, articles=True)
    first = with_articles[0]
    assert first.text == " and ".join(
        f"{'an' if custom.objects[i] == 'apple' else 'a'} {custom.objects[i]}" for i in first.objects
    )


def test_long_captions_have_one_sentence_per_object_in_order():
    vocab = shapes_vocabulary()
    short = build_captions(vocab, num_objects=4, count=30, style="short", seed=2)
    long = build_captions(vocab, num_objects=4, count=30, style="long", seed=2)
    summarised = build_captions(vocab, num_objects=4, count=30, style="long", seed=2, summary=True)
    assert [c.objects for c in long] == [c.objects for c in short]  # same objects, same order
    assert long == build_captions(vocab, num_objects=4, count=30, style="long", seed=2)
    templates = {split_sentences(c.text)[0].replace(vocab.objects[c.objects[0]], "{}") for c in long}
    assert len(templates) > 2  # sentence templates are drawn, not fixed
    for plain, with_summary in zip(long, summarised, strict=True):
        sentences = split_sentences(plain.text)
        assert len(sentences) == 4
        for sentence, index in zip(sentences, plain.objects, strict=True):
            named = [name for name in vocab.objects if name in sentence]
            assert named == [vocab.objects[index]]
        assert split_sentences(with_summary.text) == ["A picture of four objects.", *sentences]


def test_caption_settings_are_checked():
    vocab = Vocabulary("x", ("cat", "dog", "cow"))
    with pytest.raises(ProbeConfigError, match="vocabulary holds only 3"):
        build_captions(vocab, num_objects=4, count=1)
    with pytest.raises(ProbeConfigError, match="only 6 distinct ordered sets"):
        build_captions(vocab, num_objects=2, count=7)
    with pytest.raises(ProbeConfigError, match="at least 2 objects"):
        build_captions(vocab, num_objects=1, count=1)
    with pytest.raises(ProbeConfigError, match="unknown caption style"):
        build_captions(vocab, num_objects=2, count=1, style="medium")


# --- embeddings and end to end -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_encoders(tmp_path_factory):
    """Two tiny CLIP text encoders saved as Hugging Face folders: 77 positions, and 16 (truncates)."""
    root = tmp_path_factory.mktemp("text-probes")
    references = {}
    for positions, seed in ((77, 0), (16, 3)):
        model = tiny_openai_clip(positions, seed=seed)
        torch.save(model.state_dict(), root / f"clip{positions}.pt")
        convert_to_hf(root / f"clip{positions}.pt", root / f"hf{positions}", text_only=True, num_heads=2, verify=False)
        references[positions] = model
    return root, references


def test_embeddings_are_clip_text_embeddings_and_truncation_is_counted(tiny_encoders):
    root, references = tiny_encoders
    encoder = load_text_encoder(root / "hf77")
    texts = ["red cube", "a long sentence about a green sphere and a blue cone"]
    result = encode_pooled_texts(encoder, texts, batch_size=2)
    assert result.embeddings.shape == (2, 16) and result.projected and result.truncated == ()
    torch.testing.assert_close(result.embeddings.norm(dim=1), torch.ones(2))
    ids = encoder.tokenizer(texts, padding="max_length", max_length=77, return_tensors="pt")["input_ids"]
    reference = torch.nn.functional.normalize(open_clip_text_outputs(references[77], ids)["pooled"], dim=1)
    torch.testing.assert_close(result.embeddings, reference, atol=1e-5, rtol=0)
    alone = encode_pooled_texts(encoder, texts[:1], batch_size=1).embeddings  # padding does not change a text
    torch.testing.assert_close(alone[0], result.embeddings[0], atol=1e-5, rtol=0)

    short = load_text_encoder(root / "hf16")
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"  # 15 tokens
    cut = encode_pooled_texts(short, ["red cube", words])
    assert cut.truncated == (1,) and cut.token_counts == (4, 15 + 2) and cut.context_length == 16
    assert torch.isfinite(cut.embeddings).all()
    with pytest.raises(PromptError, match="1 text.* exceed the encoder's 16 tokens"):
        encode_pooled_texts(short, ["red cube", words], on_long="error")


def test_probe_text_is_deterministic_and_checks_settings_first(tiny_encoders):
    root, _ = tiny_encoders
    encoder = load_text_encoder(root / "hf77")
    kwargs = dict(num_objects=2, captions=30, style="short", seed=5, progress=False)
    first = probe_text({"tiny": encoder}, ["cat", "dog", "cow", "hen", "pig", "fox"], **kwargs)
    again = probe_text({"tiny": encoder}, ["cat", "dog", "cow", "hen", "pig", "fox"], **kwargs)
    assert first.to_json() == again.to_json()
    assert first.settings.vocabulary_size == 6 and len(first.encoders[0].toc.accuracies) == 2
    with pytest.raises(ProbeConfigError, match="summary sentence"):
        probe_text({"tiny": "/no/such/encoder"}, "coco", style="short", summary=True)
    with pytest.raises(ProbeConfigError, match="cannot split"):
        probe_text({"tiny": "/no/such/encoder"}, "coco", captions=2)


def _table_rows(table: str) -> list[list[str]]:
    lines = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_cli_probe_text_writes_reports(tiny_encoders, tmp_path, capsys):
    root, _ = tiny_encoders
    out = tmp_path / "report"
    args = ["probe-text", "--encoder", f"wide={root / 'hf77'}", "--encoder", f"narrow={root / 'hf16'}",
            "--vocabulary", "shapes", "--objects", "3", "--captions", "40", "--style", "long", "--seed", "1",
            "--device", "cpu", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "warning: 40 of 40 captions were truncated to narrow's 16 tokens" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["captions.jsonl", "results.json", "table.md"]

    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["num_objects"] == 3 and results["positions"] == [1, 2, 3]
    assert [e["name"] for e in results["encoders"]] == ["wide", "narrow"]
    wide, narrow = results["encoders"]
    assert (wide["context_length"], wide["truncated_captions"]) == (77, 0)
    assert (narrow["context_length"], narrow["truncated_captions"]) == (16, 40)
    for encoder in results["encoders"]:
        assert encoder["tor"]["total"] == 40 and len(encoder["tor"]["counts"]) == 3
        assert sum(encoder["tor"]["counts"]) == encoder["tor"]["qualified"]
        assert len(encoder["toc"]["accuracies"]) == 3 and encoder["toc"]["test_size"] == 8
        assert encoder["toc"]["chance"] == pytest.approx(1 / 64)

    captions = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert len(captions) == 40 and all(len(c["objects"]) == 3 == len(split_sentences(c["text"])) for c in captions)
    rows = _table_rows((out / "table.md").read_text())
    assert rows[0] == ["Encoder", "Probe", "Obj 1", "Obj 2", "Obj 3", "Details"]
    body = rows[1:]
    assert [(r[0], r[1]) for r in body] == [("wide", "TOR"), ("wide", "TOC"), ("narrow", "TOR"), ("narrow", "TOC")]
    assert all(len(r) == 6 for r in body)
    assert "40 captions truncated" in body[3][5] and "chance 1.6" in body[1][5]
    assert _table_rows(captured.out) == rows  # the table is printed too

    assert main(args) == 2  # the folder exists now
    assert "already exists" in capsys.readouterr().err
    assert main([*args[:3], *args[5:], "--overwrite"]) == 0
    assert [e["name"] for e in json.loads((out / "results.json").read_text())["encoders"]] == ["wide"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--encoder", "just-a-path"], "must look like NAME=VALUE"),
        (["--encoder", "a=x", "--encoder", "a=y"], "names 'a' twice"),
        (["--encoder", "a=x", "--vocabulary", "animals"], "unknown vocabulary 'animals'"),
        (["--encoder", "a=x", "--vocabulary", "VOCAB", "--objects", "4"], "vocabulary holds only 3"),
        (["--encoder", "a=x", "--summary"], "summary sentence only exists in the long caption style"),
        (["--encoder", "a=no-such-encoder", "--captions", "10"], "not an existing file or folder"),
    ],
)
def test_cli_probe_text_bad_input(tmp_path, capsys, extra, message):
    (tmp_path / "three.txt").write_text("cat\ndog\ncow\n")
    extra = [str(tmp_path / "three.txt") if e == "VOCAB" else e for e in extra]
    assert main(["probe-text", *extra, "--output-dir", str(tmp_path / "out")]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress bars
    assert last_line.startswith("error: ") and message in last_line
    assert not (tmp_path / "out").exists()
