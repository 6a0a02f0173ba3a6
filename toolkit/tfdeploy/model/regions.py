"""AWS Region codes the toolkit accepts, in one place.

A tag names a Region; a typo there would deploy nowhere (or somewhere unexpected), so Regions are
checked against this list. New Regions can be allowed without a release through the
`extra_regions` setting.
"""

from __future__ import annotations

import re

# partition -> Region codes. Kept literal (not fetched) so resolution is offline and pure.
_REGIONS_BY_PARTITION: dict[str, tuple[str, ...]] = {
    "aws": (
        "af-south-1",
        "ap-east-1", "ap-east-2",
        "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
        "ap-south-1", "ap-south-2",
        "ap-southeast-1", "ap-southeast-2", "ap-southeast-3", "ap-southeast-4",
        "ap-southeast-5", "ap-southeast-6", "ap-southeast-7",
        "ca-central-1", "ca-west-1",
        "eu-central-1", "eu-central-2",
        "eu-north-1",
        "eu-south-1", "eu-south-2",
        "eu-west-1", "eu-west-2", "eu-west-3",
        "il-central-1",
        "me-central-1", "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1", "us-east-2",
        "us-west-1", "us-west-2",
    ),
    "aws-us-gov": ("us-gov-east-1", "us-gov-west-1"),
    "aws-cn": ("cn-north-1", "cn-northwest-1"),
}

KNOWN_REGIONS: frozenset[str] = frozenset(
    code for codes in _REGIONS_BY_PARTITION.values() for code in codes
)

# The shape any Region code has; used to vet `extra_regions` entries.
REGION_SHAPE = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")

_DIRECTION_SHORT = {
    "north": "n", "south": "s", "east": "e", "west": "w", "central": "c",
    "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
}


def partition_of(region: str) -> str:
    """The AWS partition a Region belongs to (`aws`, `aws-us-gov`, `aws-cn`)."""
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    if region.startswith("cn-"):
        return "aws-cn"
    return "aws"


def short_name(region: str) -> str:
    """Compact Region name used in per-Region bucket names: us-east-1 -> use1, ap-southeast-1 -> apse1."""
    parts = region.split("-")
    area, number = parts[0], parts[-1]
    middle = "".join(
        _DIRECTION_SHORT.get(p, p[0]) if p not in ("gov",) else "g" for p in parts[1:-1]
    )
    return f"{area}{middle}{number}"


def is_allowed(region: str, extra: frozenset[str] = frozenset()) -> bool:
    return region in KNOWN_REGIONS or region in extra
