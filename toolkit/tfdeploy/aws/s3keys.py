"""ListObjectsV2 answers parsed for what a listing of keys needs, for the clients that only list.

botocore walks every element of a page through its generic shape parser: about 30 ms of CPU per
1,000 keys, and `status` of 10,000 cells lists 20 pages. A keys-only client (`clients.client(...,
keys_only=True)`) parses a successful ListObjectsV2 page with one pass over the XML and returns
the same structure holding only each object's `Key` and `ETag`, each common prefix, and the
page's own fields (`IsTruncated`, `NextContinuationToken`, `KeyCount`, `Prefix`, `EncodingType`,
...), so botocore's paginator and its URL-decoding of keys work unchanged. Every other answer
(errors, other operations) goes through botocore's parser. Only code that reads nothing else of
a listed object may use such a client.

Two more costs of botocore's are left out for these listings, the checks kept:
- botocore parses every S3 answer with status 200 a second time, whole, to see whether it is an
  `<Error>` document (S3 may answer 200 with an error: `_handle_200_error`); a keys-only client
  checks a listing by its first element and its end instead (`listing_looks_wrong`): an error
  document or a page cut short is still turned into a 500 and retried, as botocore does;
- `list_pages` pages with the continuation token itself: botocore's paginator first loads its
  paginator models, which scans every folder of botocore's data (~0.1-0.2 s of CPU per process).
"""

from __future__ import annotations

import re
from typing import Any, Iterator

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


_LISTING_START = re.compile(rb"\s*(?:<\?xml[^>]*\?>\s*)?<ListBucketResult[\s>]")


def listing_looks_wrong(body: bytes) -> bool:
    """Is a ListObjectsV2 answer with status 200 not a whole listing (pure)? An `<Error>` document,
    anything else, or a page cut short."""
    return not (_LISTING_START.match(body) and body.rstrip().endswith(b"</ListBucketResult>"))


def _listing_200_error(operation_model: Any, response_dict: Any, **kwargs: Any) -> None:
    from botocore import handlers

    if operation_model.name != "ListObjectsV2":
        handlers._handle_200_error(operation_model, response_dict, **kwargs)
    elif response_dict and response_dict.get("status_code") == 200 and listing_looks_wrong(
            response_dict.get("body") or b""):
        response_dict["status_code"] = 500  # retried, as botocore's own check would have it


def check_listings_cheaply(s3: Any) -> None:
    """Give a keys-only client `_listing_200_error` in place of botocore's check (see above); with
    a botocore whose check has another name, its own check stays."""
    from botocore import handlers

    usual = getattr(handlers, "_handle_200_error", None)
    if usual is None:
        return
    s3.meta.events.unregister("before-parse.s3.*", usual)
    s3.meta.events.register_first("before-parse.s3.*", _listing_200_error)


def list_pages(s3: Any, **params: Any) -> Iterator[dict[str, Any]]:
    """ListObjectsV2 answers page by page, following the continuation token (botocore's
    paginator, without loading its models)."""
    token = None
    while True:
        page = s3.list_objects_v2(**params, **({"ContinuationToken": token} if token else {}))
        yield page
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
