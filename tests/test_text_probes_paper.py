"""``probe-text --protocol paper``: clip-oscope's TOR, checked against a re-statement of its script."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import open_clip
import pytest
import torch
from clip_builders import tiny_openai_clip

from debias_diffusion import load_text_encoder
from debias_diffusion.cli import main
from debias_diffusion.conversion import convert_to_hf
from debias_diffusion.errors import ProbeConfigError
from debias_diffusion.text_probes import (
    COCO_OBJECTS,
    COMCO_OBJECTS,
    Caption,
    Vocabulary,
    comco_vocabulary,
    count_paper_captions,
    paper_captions,
    probe_text,
    resolve_vocabulary,
)
from debias_diffusion.text_probes.paper_protocol import paper_tor_counts

pytestmark = pytest.mark.usefixtures("single_torch_thread")

# Names with the substring pairs that make the paper's qualification differ from ours.
NAMES = ("dog", "hot dog", "bear", "teddy bear", "car", "carrot", "cat", "cup", "tie", "kite")


def test_comco_vocabulary_is_the_papers_ninety_names_in_order():
    comco = resolve_vocabulary("comco")
    assert comco == comco_vocabulary() and len(comco) == 90 == len(set(COMCO_OBJECTS))
    assert comco.objects[:3] == ("person", "bicycle", "car") and comco.objects[-1] == "toothbrush"
    assert set(COCO_OBJECTS) - set(COMCO_OBJECTS) == {"sports ball"}
    substrings = {(a, b) for a in COMCO_OBJECTS for b in COMCO_OBJECTS if a != b and a in b}
    assert substrings == {("car", "carrot"), ("dog", "hot dog"), ("bear", "teddy bear")}
    assert count_paper_captions(90, 4) == 2_555_190 and len(resolve_vocabulary("simco")) == 18


def test_paper_captions_are_combinations_in_vocabulary_order():
    vocabulary = Vocabulary("v", ("cat", "dog", "cup", "hat"))
    captions = list(paper_captions(vocabulary, 3))
    assert [c.text for c in captions] == [
        "cat and dog and cup", "cat and dog and hat", "cat and cup and hat", "dog and cup and hat",
    ]  # fmt: skip
    assert [c.objects for c in captions] == list(itertools.combinations(range(4), 3))
    with pytest.raises(ProbeConfigError, match="holds only 4"):
        paper_captions(vocabulary, 5)  # refused at once, not when the first caption is made
    with pytest.raises(ProbeConfigError, match="integer number of objects >= 2"):
        paper_captions(vocabulary, 1)


def test_substring_qualification_and_top1_outside_the_caption_hand_computed():
    names = ("dog", "hot dog", "cat", "cup")
    captions = [
        Caption("hot dog and cat", (1, 2)),  # top-2 dog, cat: "dog" in the text -> qualifies; top-1 dog: none
        Caption("dog and cup", (0, 3)),  # top-2 cup, dog -> qualifies, top-1 cup: position 2
        Caption("cat and cup", (2, 3)),  # top-2 cat, dog -> "dog" not in the text -> left out; top-1 cat
        Caption("dog and cat", (0, 2)),  # tie dog / cat at the top: the lower index (dog) is top-1 -> position 1
    ]
    similarity = np.array([[0.9, 0.1, 0.8, 0.0], [0.7, 0.0, 0.1, 0.8], [0.6, 0.0, 0.9, 0.5], [0.5, 0.1, 0.5, 0.2]])
    qualifies, position = paper_tor_counts(similarity, captions, names)
    assert qualifies.tolist() == [True, True, False, True]
    assert position.tolist() == [-1, 1, 0, 0]


def _clip_oscope_tor(model, names, n):
    """clip-oscope's TOR_ComCO_CLIP.py, re-stated: open_clip model and tokenizer, numpy ranking."""
    sentences = [" and ".join(comb) for comb in itertools.combinations(names, n)]
    with torch.no_grad():
        shapes = model.encode_text(open_clip.tokenize(list(names)))
        shapes /= shapes.norm(dim=-1, keepdim=True)
        features = model.encode_text(open_clip.tokenize(sentences))
        features /= features.norm(dim=-1, keepdim=True)
    similarities = torch.mm(features, shapes.t()).numpy()
    conditional, unconditional, qualified, substring_only = [0] * n, [0] * n, 0, 0
    for sentence, scores in zip(sentences, similarities, strict=True):
        top_n = [names[k] for k in np.argsort(scores)[-n:]]
        best = names[np.argmax(scores)]
        words = sentence.split(" and ")
        for k in range(n):
            if best == words[k]:
                unconditional[k] += 1
                break
        if all(word in sentence for word in top_n):
            qualified += 1
            substring_only += not set(top_n) <= set(words)
            for k in range(n):
                if best == words[k]:
                    conditional[k] += 1
                    break
    return conditional, unconditional, qualified, len(sentences), substring_only


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A tiny open_clip CLIP (the reference) and its Hugging Face conversion (what probe-text loads)."""
    root = tmp_path_factory.mktemp("paper-protocol")
    model = tiny_openai_clip(77, seed=2).eval()  # seed 2: captions qualify through substrings
    torch.save(model.state_dict(), root / "clip.pt")
    convert_to_hf(root / "clip.pt", root / "hf", text_only=True, num_heads=2, verify=False)
    return root / "hf", model


@pytest.mark.parametrize("n", [2, 3])
def test_paper_protocol_gives_clip_oscopes_counts(tiny_encoder, n):
    folder, reference = tiny_encoder
    conditional, unconditional, qualified, total, substring_only = _clip_oscope_tor(reference, NAMES, n)
    assert qualified > 0 and total == math.comb(len(NAMES), n)
    results = probe_text({"tiny": load_text_encoder(folder)}, list(NAMES), protocol="paper", num_objects=n,
                         device="cpu", progress=False)  # fmt: skip
    tor = results.encoders[0].tor
    assert (tor.qualified, tor.total) == (qualified, total)
    assert list(tor.counts) == conditional and list(tor.unconditional_counts) == unconditional
    assert tor.shares == pytest.approx([c / qualified for c in conditional])
    assert results.encoders[0].toc is None and results.settings.num_captions == total
    assert substring_only > 0  # the substring rule matters: ours would leave these captions out
    if n == 3:  # ... and some of them have a top-1 that is none of their objects: the row sums to < 100%
        assert sum(tor.counts) < tor.qualified


def test_paper_protocol_refuses_settings_that_would_not_apply():
    for kwargs, message in (
        (dict(captions=100), "every combination"),
        (dict(articles=True), "without articles"),
        (dict(style="long"), "short style"),
        (dict(protocol="table1"), "unknown protocol 'table1'"),
        (dict(num_objects=91), "holds only 90"),  # the paper protocol's default vocabulary is ComCO's 90 names
    ):
        with pytest.raises(ProbeConfigError, match=message):
            probe_text({"x": "/no/such/encoder"}, **{"protocol": "paper", **kwargs})


def test_cli_probe_text_paper_protocol(tiny_encoder, tmp_path, capsys):
    folder, reference = tiny_encoder
    (tmp_path / "names.txt").write_text("\n".join(NAMES) + "\n")
    out = tmp_path / "report"
    args = ["probe-text", "--protocol", "paper", "--encoder", f"tiny={folder}", "--vocabulary",
            str(tmp_path / "names.txt"), "--objects", "3", "--device", "cpu", "--output-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["settings"]["protocol"] == "paper" and results["settings"]["num_captions"] == 120
    encoder = results["encoders"][0]
    conditional, unconditional, qualified, _, _ = _clip_oscope_tor(reference, NAMES, 3)
    assert encoder["toc"] is None and encoder["tor"]["counts"] == conditional
    assert (encoder["tor"]["qualified"], encoder["tor"]["unconditional_counts"]) == (qualified, unconditional)
    captions = [json.loads(line) for line in (out / "captions.jsonl").read_text().splitlines()]
    assert [c["text"] for c in captions] == [" and ".join(c) for c in itertools.combinations(NAMES, 3)]
    table = (out / "table.md").read_text()
    assert "| tiny | TOR |" in table and "TOC" not in table.split("\n\n")[2] and "| tiny | TOR |" in printed
    assert "substring" in table


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--captions", "10"], "every combination"), (["--articles"], "without articles")],
)
def test_cli_paper_protocol_bad_input(tmp_path, capsys, extra, message):
    assert main(["probe-text", "--protocol", "paper", "-e", "a=x", *extra, "-o", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
