"""Sentence splitting of captions and prompts."""

from __future__ import annotations

import pytest

from debias_diffusion.sentences import join_sentences, split_sentences

CASES = [
    # (text, expected sentences)
    ("a photo of a cat", ["a photo of a cat"]),
    ("A cat sleeps. A dog barks.", ["A cat sleeps.", "A dog barks."]),
    ("a nurse. a ceo. a firefighter.", ["a nurse.", "a ceo.", "a firefighter."]),
    ("No final period. Still two sentences", ["No final period.", "Still two sentences"]),
    (
        "Mr. Smith walks his dog. Dr. Jones waves from St. Mary's street.",
        ["Mr. Smith walks his dog.", "Dr. Jones waves from St. Mary's street."],
    ),
    ("Mrs. Brown and Ms. Green met Prof. White.", ["Mrs. Brown and Ms. Green met Prof. White."]),
    ("Birds, e.g. crows, i.e. corvids. Next.", ["Birds, e.g. crows, i.e. corvids.", "Next."]),
    (
        "Fig. 3 shows approx. 20 birds vs. 12 cats. No. 5 is red.",
        ["Fig. 3 shows approx. 20 birds vs. 12 cats.", "No. 5 is red."],
    ),
    ("Cats, dogs, etc. are pets.", ["Cats, dogs, etc. are pets."]),
    ("Cats, dogs, etc. The end.", ["Cats, dogs, etc.", "The end."]),
    ("J. R. R. Tolkien writes. He smokes.", ["J. R. R. Tolkien writes.", "He smokes."]),
    ("J.R.R. Tolkien visits the U.S. Army base.", ["J.R.R. Tolkien visits the U.S. Army base."]),
    ("It is 3.5 m tall. Version v1.2 is out.", ["It is 3.5 m tall.", "Version v1.2 is out."]),
    ("It costs 1,000.50 dollars. Cheap!", ["It costs 1,000.50 dollars.", "Cheap!"]),
    ("Built in 1999. Then rebuilt.", ["Built in 1999.", "Then rebuilt."]),
    ("1. a cat 2. a dog", ["1. a cat 2. a dog"]),
    ("1. A cat. 2. A dog.", ["1. A cat.", "2. A dog."]),
    ("We met at 8 p.m. on Friday.", ["We met at 8 p.m. on Friday."]),
    ("We met at 8 p.m. Then we left.", ["We met at 8 p.m.", "Then we left."]),
    (
        "What is that? A bird! No, a plane... Actually, it's Superman!!!",
        ["What is that?", "A bird!", "No, a plane...", "Actually, it's Superman!!!"],
    ),
    ("and then... nothing happened", ["and then... nothing happened"]),
    ("Wait… Really?! Yes.", ["Wait…", "Really?!", "Yes."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
    ("A cat (a tabby.) A dog [a pug.] Done", ["A cat (a tabby.)", "A dog [a pug.]", "Done"]),
    ("She said: “Hi.” He waved.", ["She said: “Hi.”", "He waved."]),
    ('It ends. "Quoted start" follows.', ["It ends.", '"Quoted start" follows.']),
    ("  lots   of\twhitespace.\n  And  newlines ", ["lots of whitespace.", "And newlines"]),
    ("A title\n\nA paragraph of text", ["A title", "A paragraph of text"]),
    ("one line\nwrapped here", ["one line wrapped here"]),
    ("Visit www.example.com. It is fine.", ["Visit www.example.com.", "It is fine."]),
    ("", []),
    (" \n\t ", []),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[repr(c[0])[:40] for c in CASES])
def test_split_sentences(text, expected):
    assert split_sentences(text) == expected


@pytest.mark.parametrize("text", [c[0] for c in CASES], ids=[repr(c[0])[:40] for c in CASES])
def test_joining_gives_back_the_whitespace_normalised_text(text):
    sentences = split_sentences(text)
    assert " ".join(sentences) == " ".join(text.split())
    assert join_sentences(sentences) == " ".join(text.split())
    assert all(s and s == s.strip() for s in sentences)


@pytest.mark.parametrize(
    ("sentences", "expected"),
    [
        (["A cat.", "A dog."], "A cat. A dog."),
        ([" A  cat. ", "", "\nA dog."], "A cat. A dog."),
        ((s for s in ["one.", "two."]), "one. two."),
        ([], ""),
    ],
)
def test_join_sentences(sentences, expected):
    assert join_sentences(sentences) == expected


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["a list"]])
def test_split_sentences_rejects_non_strings(bad):
    with pytest.raises(TypeError, match="text must be a str, got"):
        split_sentences(bad)
