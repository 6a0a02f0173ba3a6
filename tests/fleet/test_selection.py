"""--tag arguments -> the tags a fleet run deploys (pure; the tag list is what tagindex returns)."""

from __future__ import annotations

import pytest
from tfdeploy.engine.tagindex import parse_for_each_ref
from tfdeploy.errors import ValidationError
from tfdeploy.fleet.selection import expand, is_fanout, matches


def entries(*names: str):
    text = "".join(f"{n}\0tag\0\0{'a' * 40}\0{'b' * 40}\0me\0\n" for n in names)
    return parse_for_each_ref(text)


REPO = entries("dev_us-east-1/research/1.1", "dev_eu-central-1/research/1.1", "dev_global/research/1.1",
               "dev_us-east-1/research/1.0", "qa_us-east-1/research/1.1", "dev_us-east-1/risk/1.1",
               "dev_bogus/research/1.1", "release-2024")


def names(selection):
    return [t.name for t in selection.tags]


def test_glob_matches_per_part_and_skips_malformed_tags_with_a_note():
    chosen = expand(["dev_*/research/1.1"], REPO)
    assert names(chosen) == ["dev_us-east-1/research/1.1", "dev_eu-central-1/research/1.1",
                             "dev_global/research/1.1"]
    assert len(chosen.notes) == 1 and "dev_bogus/research/1.1" in chosen.notes[0]
    assert not matches("dev_*", "dev_us-east-1/research/1.1")  # * never spans a '/'
    assert names(expand(["*_us-east-1/*/1.1"], REPO)) == ["dev_us-east-1/research/1.1",
                                                         "qa_us-east-1/research/1.1",
                                                         "dev_us-east-1/risk/1.1"]


def test_exact_tags_and_globs_combine_once_each_in_argument_order():
    chosen = expand(["dev_global/research/1.1", "dev_[ug]*/research/1.1"], REPO)
    assert names(chosen) == ["dev_global/research/1.1", "dev_us-east-1/research/1.1"]


@pytest.mark.parametrize("args, message", [
    (["prod_*/research/1.1"], "matches no deployment tag"),
    (["dev_us-east-1/research/*"], "both deploy cell dev-us-east-1-research"),
    (["dev_us-east-1/research/1.0", "dev_us-east-1/research/1.1"], "select one version per cell"),
    (["dev_us-east-1/research/v1"], "invalid tag"),
])
def test_refusals(args, message):
    with pytest.raises(ValidationError, match=message):
        expand(args, REPO)


def test_one_exact_tag_is_not_a_fanout():
    assert not is_fanout(("dev_us-east-1/research/1.1",))
    assert is_fanout(("dev_*/research/1.1",))
    assert is_fanout(("dev_us-east-1/research/1.1", "dev_global/research/1.1"))
