"""Parsing LFW pairs files: the official one and malformed ones."""

import pytest
from conftest import PAIRS, needs_shared

from edgeface.errors import EdgefaceError
from edgeface.evaluate.lfw import parse_pairs


@needs_shared
def test_official_pairs_file():
    pairs = parse_pairs(PAIRS)
    assert len(pairs.same) == 6000
    assert pairs.same.sum() == 3000
    assert sorted(set(pairs.fold.tolist())) == list(range(10))
    assert len(pairs.images) == 7701
    assert pairs.images[0] == "Abel_Pacheco/Abel_Pacheco_0001.jpg"  # the first line of View 2: Abel_Pacheco 1 4
    assert pairs.images[1] == "Abel_Pacheco/Abel_Pacheco_0004.jpg"


@pytest.mark.parametrize("text, needle", [
    ("", "empty"),
    ("ten 300\n", "header"),
    ("1 1\nAlice 1 2\n", "promises"),
    ("1 1\nAlice 1\nBob 1 Carol 2\n", ":2: expected a same-person"),
    ("1 1\nAlice 1 2\nBob 1 Carol x\n", ":3: image number"),
])
def test_malformed_pairs_name_the_problem(tmp_path, text, needle):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(EdgefaceError, match=needle):
        parse_pairs(path)


def test_missing_pairs_file(tmp_path):
    with pytest.raises(EdgefaceError, match="not found"):
        parse_pairs(tmp_path / "nope.txt")
