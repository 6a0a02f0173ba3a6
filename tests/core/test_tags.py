"""Tag grammar: table-driven cases and a property over arbitrary strings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tfdeploy.errors import TagError
from tfdeploy.model.tags import parse_tag

VALID = [
    ("dev_us-east-1/research/1.0", "dev", "us-east-1", "research", "1.0"),
    ("dev_global/research/1.0", "dev", None, "research", "1.0"),
    ("prod_eu-central-1/risk/2.3.1", "prod", "eu-central-1", "risk", "2.3.1"),
    ("qa_ap-southeast-1/risk/1", "qa", "ap-southeast-1", "risk", "1"),
    ("staging_us-gov-west-1/data-eng/1.1-rc1", "staging", "us-gov-west-1", "data-eng", "1.1-rc1"),
    ("dev_cn-northwest-1/research/10.20.30.40", "dev", "cn-northwest-1", "research", "10.20.30.40"),
    ("sandbox-2_global/t2/0.1-beta.3", "sandbox-2", None, "t2", "0.1-beta.3"),
]


@pytest.mark.parametrize("name,env,region,team,version", VALID)
def test_valid_tags_parse_into_parts(name, env, region, team, version):
    tag = parse_tag(name)
    assert (tag.env, tag.region, tag.team, tag.version) == (env, region, team, version)
    assert tag.scope == ("global" if region is None else "regional")
    assert tag.scope_name == (region or "global")


INVALID = [
    ("dev-us-east-1/research/1.0", "first part 'dev-us-east-1' needs '_'"),
    ("dev_us-east-1/research", "2 '/'-separated part(s)"),
    ("dev_us-east-9/x/1.0", "region 'us-east-9' is not a known AWS Region"),
    ("dev_us-east-1/../1.0", "team '..'"),
    ("dev_us-east-1/research/1.0;rm -rf /", "4 '/'-separated part(s)"),
    ("dev_us-east-1/research/1.0;rm", "version '1.0;rm'"),
    ("", "empty tag"),
    ("a" * 1000, "1000 characters long"),
    ("dev_us\u2010east-1/research/1.0", "character '\\u2010' at position 7"),  # hyphen look-alike
    ("dev_us-east-1/r\u0435search/1.0", "character '\\u0435'"),  # Cyrillic e
    ("dev_us-east-1/research/v1.0", "drop the leading 'v'"),
    ("Dev_us-east-1/research/1.0", "env 'Dev'"),
    ("dev_US-EAST-1/research/1.0", "region 'US-EAST-1'"),
    ("dev_us-east-1/Research/1.0", "team 'Research'"),
    ("dev_us-east-1/research/1.0.", "version '1.0.'"),
    ("dev_us-east-1/research/1..0", "version '1..0'"),
    ("dev_us-east-1//1.0", "team ''"),
    ("_us-east-1/research/1.0", "env ''"),
    ("dev_/research/1.0", "region ''"),
    ("dev_us-east-1/research/1.0/extra", "4 '/'-separated"),
    ("dev_us-east-1/research/$(id)", "character"),  # '$(' is ASCII: rejected by version shape
    ("dev_us-east-1/research/1.0\n", "character '\\n'"),
    ("dev_us-east-1/team-/1.0", "team 'team-'"),
]


@pytest.mark.parametrize("name,fragment", INVALID)
def test_invalid_tags_name_the_wrong_part(name, fragment):
    with pytest.raises(TagError) as excinfo:
        parse_tag(name)
    message = str(excinfo.value)
    if fragment == "character" and "version" in message:
        fragment = "version"
    assert fragment in message
    assert "\n" not in message, "errors are one line"
    assert len(message) < 400


def test_extra_regions_setting_admits_a_new_region():
    with pytest.raises(TagError):
        parse_tag("dev_xx-new-1/research/1.0")
    assert parse_tag("dev_xx-new-1/research/1.0", frozenset({"xx-new-1"})).region == "xx-new-1"


KEY_RE = re.compile(r"^[a-z][a-z0-9-]*/[a-z][a-z0-9-]*-(global|[a-z]{2}(-gov)?-[a-z]+-[0-9]+)/terraform\.tfstate$")


def _key(tag):
    return f"{tag.team}/{tag.env}-{tag.scope_name}/terraform.tfstate"


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.text(max_size=150),
    st.from_regex(r"[a-zA-Z0-9_./;$ -]{0,12}_[a-z0-9-]{0,16}/[a-z.-]{0,8}/[0-9.va-z-]{0,8}", fullmatch=True),
))
def test_any_string_is_a_valid_deployment_or_a_clean_error(text):
    try:
        tag = parse_tag(text)
    except TagError as exc:
        assert "\n" not in str(exc)
        return
    # Valid: the parts re-assemble the tag and the state key has the documented shape.
    assert f"{tag.env}_{tag.scope_name}/{tag.team}/{tag.version}" == text
    assert KEY_RE.match(_key(tag))


@settings(max_examples=200, deadline=None)
@given(
    env=st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True),
    region=st.sampled_from(["global", "us-east-1", "eu-central-1", "ap-southeast-1", "us-gov-east-1"]),
    team=st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True),
    version=st.from_regex(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}(-rc[0-9])?", fullmatch=True),
)
def test_every_well_formed_tag_is_accepted(env, region, team, version):
    tag = parse_tag(f"{env}_{region}/{team}/{version}")
    assert (tag.env, tag.scope_name, tag.team, tag.version) == (env, region, team, version)
