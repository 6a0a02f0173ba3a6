"""ListObjectsV2 answers parsed for what a listing of keys needs, for the clients that only list.

botocore walks every element of a page through its generic shape parser: about 30 ms of CPU per
1,000 keys, and `status` of 10,000 cells lists 20 pages. A keys-only client (`clients.client(...,
keys_only=True)`) parses a successful ListObjectsV2 page with one pass over the XML and returns
the same structure holding only each object's `Key` and `ETag`, each common prefix, and the
page's own fields (`IsTruncated`, `NextContinuationToken`, `KeyCount`, `Prefix`, `EncodingType`,
...), so botocore's paginator and its URL-decoding of keys work unchanged. Every other answer
(errors, other operations) goes through botocore's parser. Only code that reads nothing else of
a listed object may use such a client.
"""

from __future__ import annotations

from typing import Any

from botocore.parsers import ResponseParserFactory, RestXMLParser

_STRINGS = ("Name", "Prefix", "Delimiter", "EncodingType", "ContinuationToken", "NextContinuationToken", "StartAfter")
_INTEGERS = ("KeyCount", "MaxKeys")
_LISTING = "ListObjectsV2Output"


class KeysParser(RestXMLParser):
    def _do_parse(self, response: dict[str, Any], shape: Any) -> dict[str, Any]:
        if shape is None or shape.name != _LISTING or not response.get("body"):
            return super()._do_parse(response, shape)
        return listing(response["body"])


def _name(tag: str) -> str:
    return tag.rpartition("}")[2]


def listing(body: bytes) -> dict[str, Any]:
    """A ListObjectsV2 page (pure): botocore's structure, with Key and ETag per object."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)
    parsed: dict[str, Any] = {}
    contents: list[dict[str, str]] = []
    prefixes: list[dict[str, str]] = []
    for child in root:
        tag = _name(child.tag)
        if tag == "Contents":
            contents.append({name: node.text or "" for node in child if (name := _name(node.tag)) in ("Key", "ETag")})
        elif tag == "CommonPrefixes":
            prefixes += [{"Prefix": node.text or ""} for node in child if _name(node.tag) == "Prefix"]
        elif tag == "IsTruncated":
            parsed[tag] = (child.text or "").strip().lower() == "true"
        elif tag in _INTEGERS:
            parsed[tag] = int(child.text or 0)
        elif tag in _STRINGS:
            parsed[tag] = child.text or ""
    if contents:
        parsed["Contents"] = contents
    if prefixes:
        parsed["CommonPrefixes"] = prefixes
    return parsed


class KeysParserFactory(ResponseParserFactory):
    """botocore's factory, with KeysParser for the REST-XML protocol (S3's)."""

    def create_parser(self, protocol_name: str) -> Any:
        if protocol_name == "rest-xml":
            return KeysParser(**self._defaults)
        return super().create_parser(protocol_name)
