"""Pre-filled registrations from what a source or catalogue says about itself.

Given a URL, :func:`harvest` finds out what it is and turns it into candidate
:class:`SourceRegistration` objects for a steward to review, without registering anything:

- a DCAT catalogue (Turtle, JSON-LD or RDF/XML; another hub's ``/api/v1/catalog``, a national
  portal's): a candidate per dataset that is reachable through an OGC API Features collection
  or a WFS, with title, description, licence, owner, contact point, keywords, themes, extent
  and access rights;
- an OGC API landing page: one ``ogcapi-features`` candidate with its feature collections;
- a WFS 2.0 GetCapabilities document (or a WFS endpoint, which is then asked for one): one
  ``wfs`` candidate with its feature types and the service's metadata.

Everything is fetched as connectors fetch: through the hub's guarded HTTP client (only the
addresses ``allowed_networks`` allows besides public ones), same-host redirects only, with a
timeout per request and a cap on the size of every document. A JSON-LD document's remote
``@context`` is fetched the same way and inlined, so that rdflib itself never reaches out;
XML with a document type declaration is refused, so that no entity is ever expanded.
"""

from __future__ import annotations

import asyncio
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import shapely.wkt
from lxml import etree
from pydantic import ValidationError
from rdflib import Graph, Literal, URIRef
from rdflib.exceptions import ParserError
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF
from rdflib.plugins.parsers.jsonld import to_rdf
from rdflib.term import Node
from shapely.errors import ShapelyError
from starlette.concurrency import run_in_threadpool

from connectors._http import send
from connectors.errors import ConnectorError, UpstreamTimeout
from hub.catalogue.registration import SourceRegistration
from hub.errors import HarvestFailed

VCARD_NS = "http://www.w3.org/2006/vcard/ns#"
WFS_NS = "http://www.opengis.net/wfs/2.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
XLINK_NS = "http://www.w3.org/1999/xlink"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
FEATURES_CORE = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"

DEFAULT_TIMEOUT = 30.0
"""Seconds a request of the harvest may take."""
MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
"""Largest document read: catalogues of thousands of datasets fit, a runaway answer does not."""
MAX_PAGES = 50
"""Most pages of collections or catalogue followed through ``next`` links."""
MAX_CONTEXTS = 10
"""Most remote JSON-LD contexts fetched for one document."""

# A client that takes the first acceptable type gets the one that says most about itself.
ACCEPT = (
    "application/json, text/turtle;q=0.9, application/ld+json;q=0.8, application/rdf+xml;q=0.7, "
    "application/xml;q=0.6, text/xml;q=0.6, */*;q=0.1"
)
_RDF_MEDIA = {
    "text/turtle": "turtle",
    "application/x-turtle": "turtle",
    "application/ld+json": "json-ld",
    "application/rdf+xml": "xml",
    "application/n-triples": "nt",
    "text/n3": "n3",
}
_SUFFIX_FORMATS = {".ttl": "turtle", ".jsonld": "json-ld", ".rdf": "xml", ".nt": "nt", ".n3": "n3"}
# WFS request parameters the steward's URL may carry; the registration's URL must not.
_WFS_REQUEST_PARAMETERS = frozenset(
    {"SERVICE", "REQUEST", "VERSION", "ACCEPTVERSIONS", "SECTIONS", "ACCEPTFORMATS", "UPDATESEQUENCE"}
)
_WFS_TYPE_PARAMETERS = ("TYPENAMES", "TYPENAME")
_WFS_COLLECTION_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_COLLECTION_PATH = re.compile(r"^(?P<base>.+?)/collections/(?P<id>[^/?#]+)(?:/items)?/?$")
_DATA_RELS = ("data", "http://www.opengis.net/def/rel/ogc/1.0/data")
_CONFORMANCE_RELS = ("conformance", "http://www.opengis.net/def/rel/ogc/1.0/conformance")
_WKT_CRS = re.compile(r"^\s*<(?P<crs>[^>]+)>\s*")
_ACCESS_RIGHTS = {
    "PUBLIC": "open",
    "RESTRICTED": "internal",
    "NON_PUBLIC": "confidential",
    "SENSITIVE": "confidential",
    "CONFIDENTIAL": "confidential",
}


class HarvestKind(StrEnum):
    """What a harvested URL turned out to be."""

    DCAT = "dcat"
    OGCAPI = "ogcapi-features"
    WFS = "wfs"


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something the harvested document describes that yields no candidate, and why."""

    name: str
    reason: str


@dataclass(slots=True)
class Harvest:
    """The candidates harvested from one URL, for review; nothing is registered."""

    url: str
    kind: HarvestKind
    candidates: list[SourceRegistration] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The harvest as JSON: candidates in the form registrations take."""
        return {
            "url": self.url,
            "kind": self.kind.value,
            "candidates": [candidate.public_dict() for candidate in self.candidates],
            "skipped": [{"name": s.name, "reason": s.reason} for s in self.skipped],
        }


Progress = Callable[[str, int, int | None], None]
"""Told ``(what is being done, steps done, steps expected or None)`` as the harvest goes on."""


async def harvest(
    url: str,
    *,
    http: httpx.AsyncClient,
    language: str = "nl",
    seconds: float = DEFAULT_TIMEOUT,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    progress: Progress | None = None,
) -> Harvest:
    """Candidate registrations from the catalogue, landing page or capabilities at ``url``.

    ``http`` should be the hub's guarded client; ``language`` (ISO 639-1) picks among texts
    given in several languages; ``seconds`` bounds each request. Raises :class:`HarvestFailed`
    when nothing can be harvested.
    """
    return await _Harvester(http, language, seconds, max_bytes, progress).run(url)


def slug(text: str, *, fallback: str = "source") -> str:
    """A registration or collection id made from a title: lower-case ASCII words joined by ``-``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    cleaned = "".join(c if c.isalnum() else "-" for c in ascii_text.lower())
    joined = "-".join(filter(None, cleaned.split("-")))[:64].strip("-")
    return joined or fallback


class _Harvester:
    """One harvest: fetches with the hub's rules and counts its steps for the progress bar."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        language: str,
        timeout: float,
        max_bytes: int,
        progress: Progress | None,
    ) -> None:
        self.http = http
        self.language = language
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._progress = progress
        self._done = 0
        self._total: int | None = None

    def _step(self, what: str) -> None:
        if self._progress is not None:
            self._progress(what, self._done, self._total)

    async def fetch(self, url: str, *, accept: str = ACCEPT) -> httpx.Response:
        """GET ``url`` as a connector would; any failure is a :class:`HarvestFailed` naming it."""
        _require_http_url(url)
        self._step(f"reading {url}")
        try:
            # bounds the whole answer: a server that drips it byte by byte stays within every
            # per-read timeout
            async with asyncio.timeout(self.timeout):
                response = await send(
                    self.http,
                    "GET",
                    url,
                    source_id="harvest",
                    seconds=self.timeout,
                    headers={"Accept": accept},
                    max_bytes=self.max_bytes,
                )
        except (TimeoutError, UpstreamTimeout) as exc:
            raise HarvestFailed(f"{url} did not answer within {self.timeout:g} s") from exc
        except ConnectorError as exc:
            raise HarvestFailed(f"{url}: {exc.message}") from exc
        self._done += 1
        self._step(f"read {url}")
        if response.status_code >= 400:
            raise HarvestFailed(f"{url} answered {response.status_code} {response.reason_phrase}".strip())
        return response

    async def run(self, url: str) -> Harvest:
        url = url.strip()
        response = await self.fetch(url)
        try:
            return await self._harvest(url, response)
        except HarvestFailed as first:
            # a bare WFS endpoint answers an error or an empty page until asked for capabilities
            query = {name.upper() for name, _ in parse_qsl(urlsplit(url).query)}
            if "REQUEST" in query:
                raise
            capabilities_url = _with_query(
                url, SERVICE="WFS", REQUEST="GetCapabilities", ACCEPTVERSIONS="2.0.0"
            )
            try:
                retried = await self.fetch(capabilities_url)
                found = await self._harvest(capabilities_url, retried)
            except HarvestFailed:
                raise first from None
            if found.kind is not HarvestKind.WFS:
                raise first from None
            return found

    async def _harvest(self, url: str, response: httpx.Response) -> Harvest:
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        body = response.content
        suffix = "." + urlsplit(url).path.rpartition(".")[2].lower() if "." in urlsplit(url).path else ""
        if media in _RDF_MEDIA or (
            media in ("", "text/plain", "application/octet-stream") and suffix in _SUFFIX_FORMATS
        ):
            rdf_format = _RDF_MEDIA.get(media) or _SUFFIX_FORMATS[suffix]
            if rdf_format == "json-ld":
                return await self._dcat(url, await self._json_ld(url, _json(url, body)), "json-ld")
            if rdf_format == "xml":
                _refuse_doctype(url, body)
            return await self._dcat(url, body, rdf_format)
        stripped = body.lstrip()
        if media == "application/json" or media.endswith("+json") or stripped.startswith(b"{"):
            document = _json(url, body)
            if not isinstance(document, dict):
                raise HarvestFailed(f"{url} is JSON, but neither an OGC API landing page nor JSON-LD")
            if "@context" in document or "@graph" in document:
                return await self._dcat(url, await self._json_ld(url, document), "json-ld")
            if isinstance(document.get("collections"), list):
                base = url.split("?", 1)[0].rstrip("/").removesuffix("/collections")
                return await self._ogcapi(base, None, url, document)
            if isinstance(document.get("links"), list):
                return await self._ogcapi(url.split("?", 1)[0].rstrip("/"), document, None, None)
            raise HarvestFailed(f"{url} is JSON, but neither an OGC API landing page nor JSON-LD")
        if (
            media in ("application/xml", "text/xml")
            or media.endswith("+xml")
            or stripped.startswith(b"<?xml")
        ):
            return await self._xml(url, body)
        if media == "text/html" or stripped[:15].lower().startswith((b"<!doctype html", b"<html")):
            raise HarvestFailed(
                f"{url} is an HTML page; give the URL of a DCAT catalogue, an OGC API landing page "
                "or a WFS GetCapabilities document"
            )
        raise HarvestFailed(
            f"{url} is neither a DCAT catalogue, an OGC API landing page nor a WFS capabilities "
            f"document (it answered {media or 'an untyped document'})"
        )

    # --- XML: WFS capabilities or RDF/XML -------------------------------------------------

    async def _xml(self, url: str, body: bytes) -> Harvest:
        _refuse_doctype(url, body)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        try:
            root = etree.fromstring(body, parser)
        except etree.XMLSyntaxError as exc:
            raise HarvestFailed(f"{url} is not well-formed XML: {exc}") from exc
        name = etree.QName(root)
        if name.localname == "WFS_Capabilities":
            version = root.get("version", "")
            if name.namespace != WFS_NS or version != "2.0.0":
                raise HarvestFailed(
                    f"{url} describes a WFS {version or 'of unknown version'}; the hub speaks WFS 2.0.0"
                )
            return _wfs_harvest(url, root)
        if name.namespace == RDF_NS and name.localname == "RDF":
            return await self._dcat(url, body, "xml")
        if name.localname in ("ExceptionReport", "ServiceExceptionReport"):
            texts = " ".join(t.strip() for t in root.itertext() if t.strip())
            raise HarvestFailed(f"{url} answered an exception report: {texts[:300] or 'without text'}")
        raise HarvestFailed(f"{url} is XML ({name.localname}), but neither WFS 2.0 capabilities nor RDF/XML")

    # --- OGC API ------------------------------------------------------------------------

    async def _ogcapi(
        self,
        base: str,
        landing: dict[str, Any] | None,
        collections_url: str | None,
        first_page: dict[str, Any] | None,
    ) -> Harvest:
        self._total = 2
        if landing is None:
            landing = _json(base, (await self.fetch(base, accept="application/json")).content)
            if not isinstance(landing, dict):
                raise HarvestFailed(f"{base} is not an OGC API landing page")
        links = _links(landing)
        conformance = _link(links, _CONFORMANCE_RELS)
        if conformance is not None:
            self._total += 1
            answer = _json(conformance, (await self.fetch(conformance, accept="application/json")).content)
            conforms = answer.get("conformsTo", []) if isinstance(answer, dict) else []
            if FEATURES_CORE not in conforms:
                raise HarvestFailed(
                    f"{base} does not declare conformance to OGC API - Features - Part 1: Core"
                )
        if first_page is None:
            collections_url = _link(links, _DATA_RELS) or f"{base}/collections"
            page = _json(
                collections_url, (await self.fetch(collections_url, accept="application/json")).content
            )
        else:
            page = first_page
        collections: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if not isinstance(page, dict) or not isinstance(page.get("collections"), list):
                raise HarvestFailed(f"{collections_url} does not list collections")
            collections += [c for c in page["collections"] if isinstance(c, dict)]
            following = _link(_links(page), ("next",))
            if following is None:
                break
            self._total = (self._total or 0) + 1
            page = _json(following, (await self.fetch(following, accept="application/json")).content)
        return _ogcapi_harvest(base, landing, collections, self.language)

    # --- DCAT ---------------------------------------------------------------------------

    async def _json_ld(self, url: str, document: Any) -> Any:
        """The JSON-LD document with every remote ``@context`` fetched and inlined."""
        fetched: dict[str, Any] = {}

        async def resolve(value: Any, base: str, depth: int) -> Any:
            if isinstance(value, str):
                target = str(httpx.URL(base).join(value))
                if target not in fetched:
                    if len(fetched) >= MAX_CONTEXTS or depth > 3:
                        raise HarvestFailed(f"{url}: its JSON-LD contexts nest too deep or are too many")
                    self._total = (self._total or 1) + 1
                    loaded = _json(
                        target,
                        (await self.fetch(target, accept="application/ld+json, application/json")).content,
                    )
                    if not isinstance(loaded, dict) or "@context" not in loaded:
                        raise HarvestFailed(f"{target} is no JSON-LD context")
                    fetched[target] = await resolve(loaded["@context"], target, depth + 1)
                return fetched[target]
            if isinstance(value, list):
                return [await resolve(item, base, depth) for item in value]
            if isinstance(value, dict):
                if isinstance(value.get("@import"), str):
                    raise HarvestFailed(
                        f"{url}: a JSON-LD context imports {value['@import']}, which is not read"
                    )
                return {key: await walk(item, base, depth) for key, item in value.items()}
            return value

        async def walk(node: Any, base: str, depth: int) -> Any:
            if isinstance(node, dict):
                return {
                    key: await (resolve(item, base, depth) if key == "@context" else walk(item, base, depth))
                    for key, item in node.items()
                }
            if isinstance(node, list):
                return [await walk(item, base, depth) for item in node]
            return node

        return await walk(document, url, 0)

    async def _dcat(self, url: str, data: Any, rdf_format: str) -> Harvest:
        """Datasets of an RDF document: ``data`` is its bytes, or for JSON-LD the parsed JSON."""

        def parse() -> Graph:
            graph = Graph()
            if rdf_format == "json-ld":
                # straight from the JSON whose contexts are inlined: nothing left to fetch, and
                # no ConjunctiveGraph (deprecated) that rdflib's JSON-LD parser would make
                to_rdf(data, graph, base=url)
            else:
                graph.parse(data=data, format=rdf_format, publicID=url)
            return graph

        try:
            graph = await run_in_threadpool(parse)  # rdflib is slow enough to stall the event loop
        except (ParserError, SyntaxError, ValueError, KeyError, TypeError) as exc:
            raise HarvestFailed(
                f"{url} is not valid {_FORMAT_NAMES.get(rdf_format, rdf_format)}: {exc}"
            ) from exc
        datasets = sorted(set(graph.subjects(RDF.type, DCAT.Dataset)), key=str)
        if not datasets:
            raise HarvestFailed(f"{url} is RDF, but describes no dcat:Dataset")
        return _dcat_harvest(url, graph, datasets, self.language)


_FORMAT_NAMES = {"turtle": "Turtle", "json-ld": "JSON-LD", "xml": "RDF/XML", "nt": "N-Triples", "n3": "N3"}


# --- helpers ----------------------------------------------------------------------------


def _require_http_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HarvestFailed(f"{url!r} is not an absolute http(s) URL")


def _with_query(url: str, **parameters: str) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(parameters)]))
    return urlunsplit(parts._replace(query=query))


def _without_parameters(url: str, names: Iterable[str]) -> str:
    """``url`` without the query parameters ``names`` (any case); the others kept as written."""
    parts = urlsplit(url)
    dropped = {name.upper() for name in names}
    kept = [
        piece for piece in parts.query.split("&") if piece and piece.split("=", 1)[0].upper() not in dropped
    ]
    return urlunsplit(parts._replace(query="&".join(kept), fragment=""))


def _json(url: str, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HarvestFailed(f"{url} is not valid JSON: {exc}") from exc


def _refuse_doctype(url: str, body: bytes) -> None:
    # entities are where XML reaches out (external ones) or blows up (nested ones)
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise HarvestFailed(f"{url} declares a document type, which the hub does not read")


def _links(document: dict[str, Any]) -> list[dict[str, Any]]:
    links = document.get("links")
    return [link for link in links if isinstance(link, dict)] if isinstance(links, list) else []


def _link(links: list[dict[str, Any]], rels: Iterable[str]) -> str | None:
    """The href of the first JSON link with one of ``rels``, JSON before other types."""
    wanted = set(rels)
    matching = [link for link in links if link.get("rel") in wanted and isinstance(link.get("href"), str)]
    matching.sort(key=lambda link: 0 if "json" in str(link.get("type", "application/json")) else 1)
    return str(matching[0]["href"]) if matching else None


def _union(boxes: Iterable[tuple[float, float, float, float]]) -> tuple[float, float, float, float] | None:
    boxes = list(boxes)
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _crs84_box(values: Any) -> tuple[float, float, float, float] | None:
    """Four numbers that make a valid CRS84 box (2D or the 2D part of a 3D one), else ``None``."""
    if not isinstance(values, list | tuple) or len(values) not in (4, 6):
        return None
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return None
    minx, miny, maxx, maxy = (
        numbers if len(numbers) == 4 else (numbers[0], numbers[1], numbers[3], numbers[4])
    )
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        return None
    return (minx, miny, maxx, maxy)


def _unique_ids(candidates: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for candidate in candidates:
        base = candidate["id"]
        number = 2
        while candidate["id"] in seen:
            suffix = f"-{number}"
            candidate["id"] = base[: 64 - len(suffix)] + suffix
            number += 1
        seen.add(candidate["id"])


def _validated(raw: list[dict[str, Any]], skipped: list[Skipped]) -> list[SourceRegistration]:
    """Registrations of the raw candidates; one that does not validate is reported as skipped."""
    _unique_ids(raw)
    candidates = []
    for entry in raw:
        cleaned = {key: value for key, value in entry.items() if value not in (None, "", [], {})}
        try:
            candidates.append(SourceRegistration.model_validate(cleaned))
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
            skipped.append(
                Skipped(entry.get("title") or entry["id"], f"not a valid registration: {problems}")
            )
    return candidates


# --- OGC API ----------------------------------------------------------------------------


def _ogcapi_harvest(
    base: str, landing: dict[str, Any], collections: list[dict[str, Any]], language: str
) -> Harvest:
    result = Harvest(base, HarvestKind.OGCAPI)
    specs = []
    keywords: dict[str, None] = {}
    boxes = []
    licences: set[str] = set()
    for collection in collections:
        cid = collection.get("id")
        if not isinstance(cid, str) or not cid:
            result.skipped.append(Skipped(str(collection.get("title") or "?"), "a collection without id"))
            continue
        item_type = collection.get("itemType", "feature")
        if item_type != "feature":
            result.skipped.append(Skipped(cid, f"its items are {item_type}s, not features"))
            continue
        spec = {"upstream": cid, "title": _text(collection.get("title"), language)}
        description = _text(collection.get("description"), language)
        if description:
            spec["description"] = description
        specs.append({k: v for k, v in spec.items() if v})
        for keyword in collection.get("keywords") or []:
            word = keyword.get("keyword") if isinstance(keyword, dict) else keyword
            if isinstance(word, str) and word.strip():
                keywords[word.strip()] = None
        spatial = (collection.get("extent") or {}).get("spatial") or {}
        if spatial.get("crs", CRS84) in (CRS84, "http://www.opengis.net/def/crs/OGC/1.3/CRS84h"):
            bboxes = spatial.get("bbox") or []
            box = _crs84_box(bboxes[0]) if bboxes and isinstance(bboxes[0], list) else None
            if box is not None:
                boxes.append(box)
        licences.update(
            link["href"] for link in _links(collection) if link.get("rel") == "license" and "href" in link
        )
    if not specs:
        raise HarvestFailed(f"{base} offers no feature collections")
    licence = _link(_links(landing), ("license",)) or (licences.pop() if len(licences) == 1 else None)
    host = urlsplit(base).hostname or "ogcapi"
    title = _text(landing.get("title"), language) or host
    raw = {
        "id": slug(title, fallback=slug(host)),
        "title": title,
        "description": _text(landing.get("description"), language),
        "connector": "ogcapi-features",
        "url": base,
        "collections": specs,
        "licence": licence,
        "keywords": list(keywords),
        "extent": _union(boxes),
    }
    result.candidates = _validated([raw], result.skipped)
    return result


def _text(value: Any, language: str) -> str:
    """A title or description that may be a plain string or a map of languages."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, dict):
        for key in (language, "en", *value):
            if isinstance(value.get(key), str):
                return str(value[key]).strip()
    return ""


# --- WFS --------------------------------------------------------------------------------


def _wfs_harvest(url: str, root: etree._Element) -> Harvest:
    endpoint = _wfs_endpoint(url)
    result = Harvest(endpoint, HarvestKind.WFS)
    ns = {"wfs": WFS_NS, "ows": OWS_NS, "xlink": XLINK_NS}

    def first(path: str, node: etree._Element = root) -> str:
        found = node.xpath(path, namespaces=ns)
        return str(found[0]).strip() if found else ""

    types = root.xpath("wfs:FeatureTypeList/wfs:FeatureType", namespaces=ns)
    names = [first("wfs:Name/text()", ft) for ft in types]
    local_names = [name.rpartition(":")[2] for name in names]
    specs = []
    boxes = []
    for feature_type, name, local_name in zip(types, names, local_names, strict=True):
        if not name:
            continue
        # the collection id the wfs connector gives the type
        collection = local_name
        if local_names.count(local_name) > 1 or not _WFS_COLLECTION_ID.match(local_name):
            collection = re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
        spec = {
            "upstream": collection,
            "title": first("wfs:Title/text()", feature_type),
            "description": first("wfs:Abstract/text()", feature_type),
        }
        specs.append({k: v for k, v in spec.items() if v})
        lower = first("ows:WGS84BoundingBox/ows:LowerCorner/text()", feature_type).split()
        upper = first("ows:WGS84BoundingBox/ows:UpperCorner/text()", feature_type).split()
        box = _crs84_box(lower[:2] + upper[:2]) if len(lower) >= 2 and len(upper) >= 2 else None
        if box is not None:
            boxes.append(box)
    if not specs:
        raise HarvestFailed(f"{url} lists no feature types")
    identification = "ows:ServiceIdentification/"
    provider = "ows:ServiceProvider/"
    contact = provider + "ows:ServiceContact/"
    host = urlsplit(endpoint).hostname or "wfs"
    title = first(identification + "ows:Title/text()") or host
    constraints = first(identification + "ows:AccessConstraints/text()")
    owner = first(provider + "ows:ProviderName/text()")
    contact_name = first(contact + "ows:IndividualName/text()") or owner
    raw = {
        "id": slug(title, fallback=slug(host)),
        "title": title,
        "description": first(identification + "ows:Abstract/text()"),
        "connector": "wfs",
        "url": endpoint,
        "collections": specs,
        # an access constraint is free text; only a URI says which licence it is
        "licence": constraints if re.match(r"^https?://\S+$", constraints) else None,
        "owner": owner,
        "contact_point": {
            "name": contact_name,
            "email": first(contact + "ows:ContactInfo/ows:Address/ows:ElectronicMailAddress/text()") or None,
            "url": first(provider + "ows:ProviderSite/@xlink:href")
            or first(contact + "ows:ContactInfo/ows:OnlineResource/@xlink:href")
            or None,
        }
        if contact_name
        else None,
        "keywords": [
            str(k).strip()
            for k in root.xpath(identification + "ows:Keywords/ows:Keyword/text()", namespaces=ns)
            if str(k).strip()
        ],
        "extent": _union(boxes),
    }
    result.candidates = _validated([raw], result.skipped)
    return result


def _wfs_endpoint(url: str) -> str:
    """The WFS endpoint of a capabilities URL: its own parameters (MapServer's map=) kept."""
    return _without_parameters(url, _WFS_REQUEST_PARAMETERS)


# --- DCAT -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """How the hub would reach a dataset: connector, URL and upstream collection."""

    connector: str
    url: str
    upstream: str | None


def _dcat_harvest(url: str, graph: Graph, datasets: list[Node], language: str) -> Harvest:
    result = Harvest(url, HarvestKind.DCAT)
    raw = []
    for dataset in datasets:
        title = _literal(graph, dataset, DCTERMS.title, language) or str(dataset)
        target = _dataset_target(graph, dataset)
        if target is None:
            access = graph.value(dataset, DCTERMS.accessRights)
            reason = "no distribution or data service the hub can connect to (OGC API Features or WFS)"
            if access is not None and _access_code(access) not in (None, "PUBLIC"):
                reason += f"; its access rights are {_access_code(access)}"
            result.skipped.append(Skipped(title, reason))
            continue
        raw.append(_dcat_candidate(graph, dataset, title, target, language))
    result.candidates = _validated(raw, result.skipped)
    return result


def _dcat_candidate(
    graph: Graph, dataset: Node, title: str, target: _Target, language: str
) -> dict[str, Any]:
    access = graph.value(dataset, DCTERMS.accessRights)
    code = _access_code(access) if access is not None else None
    spec = {"upstream": target.upstream} if target.upstream else None
    return {
        "id": slug(target.upstream or title),
        "title": title,
        "description": _literal(graph, dataset, DCTERMS.description, language),
        "connector": target.connector,
        "url": target.url,
        "collections": [spec] if spec else None,
        # unknown access rights stay the registration's default: internal, never open
        "classification": _ACCESS_RIGHTS.get(code or ""),
        "licence": _licence(graph, dataset),
        "owner": _agent_name(graph, graph.value(dataset, DCTERMS.creator))
        or _agent_name(graph, graph.value(dataset, DCTERMS.publisher)),
        "contact_point": _contact(graph, graph.value(dataset, DCAT.contactPoint)),
        "keywords": list(dict.fromkeys(_literals(graph, dataset, DCAT.keyword, language))),
        "theme": sorted(
            str(theme) for theme in graph.objects(dataset, DCAT.theme) if isinstance(theme, URIRef)
        ),
        "extent": _dcat_extent(graph, dataset),
    }


def _dataset_target(graph: Graph, dataset: Node) -> _Target | None:
    """The first distribution (or serving data service) that leads to a collection the hub can read."""
    for distribution in sorted(graph.objects(dataset, DCAT.distribution), key=str):
        service = graph.value(distribution, DCAT.accessService)
        endpoint = graph.value(service, DCAT.endpointURL) if service is not None else None
        for address in (
            graph.value(distribution, DCAT.accessURL),
            graph.value(distribution, DCAT.downloadURL),
        ):
            target = _target(str(address), str(endpoint) if endpoint else None) if address else None
            if target is not None:
                return target
        if endpoint is not None:
            target = _target(str(endpoint), None, conforms=set(graph.objects(service, DCTERMS.conformsTo)))
            if target is not None:
                return target
    landing = graph.value(dataset, DCAT.landingPage)
    for service in sorted(graph.subjects(DCAT.servesDataset, dataset), key=str):
        endpoint = graph.value(service, DCAT.endpointURL)
        if landing is not None and endpoint is not None:
            target = _target(str(landing), str(endpoint))
            if target is not None:
                return target
    return None


def _target(address: str, endpoint: str | None, *, conforms: set[Node] | None = None) -> _Target | None:
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https"):
        return None
    parameters = {name.upper(): value for name, value in parse_qsl(parts.query)}
    if parameters.get("SERVICE", "").upper() == "WFS":
        type_name = next((parameters[p] for p in _WFS_TYPE_PARAMETERS if p in parameters), None)
        upstream = type_name.split(",")[0].rpartition(":")[2] if type_name else None
        endpoint_url = _without_parameters(
            address, {*_WFS_REQUEST_PARAMETERS, *_WFS_TYPE_PARAMETERS, "OUTPUTFORMAT", "COUNT", "SRSNAME"}
        )
        return _Target("wfs", endpoint_url, upstream)
    path_only = urlunsplit(parts._replace(query="", fragment=""))
    match = _COLLECTION_PATH.match(path_only)
    if match is not None:
        base = match["base"]
        if endpoint and path_only.startswith(endpoint.rstrip("/") + "/collections/"):
            base = endpoint.rstrip("/")
        return _Target("ogcapi-features", base, match["id"])
    if conforms and any("ogcapi-features" in str(standard) for standard in conforms):
        return _Target("ogcapi-features", path_only.rstrip("/"), None)
    if conforms and any("wfs" in str(standard).lower() for standard in conforms):
        return _Target("wfs", path_only, None)
    return None


def _access_code(node: Node) -> str | None:
    text = str(node).rstrip("/")
    return re.split(r"[/#]", text)[-1].upper() or None


def _literals(graph: Graph, subject: Node, predicate: URIRef, language: str) -> list[str]:
    """The literal values in ``language`` if there are any, else the untagged, else English, else all."""
    values = [v for v in graph.objects(subject, predicate) if isinstance(v, Literal)]
    for wanted in (language, None, "en"):
        chosen = [str(v).strip() for v in values if v.language == wanted and str(v).strip()]
        if chosen:
            return sorted(chosen)
    return sorted(str(v).strip() for v in values if str(v).strip())


def _literal(graph: Graph, subject: Node, predicate: URIRef, language: str) -> str:
    values = _literals(graph, subject, predicate, language)
    return values[0] if values else ""


def _licence(graph: Graph, dataset: Node) -> str | None:
    licences = {str(value) for value in graph.objects(dataset, DCTERMS.license) if isinstance(value, URIRef)}
    for distribution in graph.objects(dataset, DCAT.distribution):
        licences.update(str(v) for v in graph.objects(distribution, DCTERMS.license) if isinstance(v, URIRef))
    # several different licences are the steward's to choose from, not the harvester's
    return licences.pop() if len(licences) == 1 else None


def _agent_name(graph: Graph, agent: Node | None) -> str | None:
    if agent is None:
        return None
    names = [str(n) for n in graph.objects(agent, FOAF.name)]
    return sorted(names)[0] if names else None


def _contact(graph: Graph, node: Node | None) -> dict[str, Any] | None:
    if node is None:
        return None
    vcard = {
        name: graph.value(node, URIRef(VCARD_NS + name))
        for name in ("fn", "hasEmail", "hasURL", "organization-name")
    }
    name = vcard["fn"] or vcard["organization-name"]
    if name is None:
        return None
    email = str(vcard["hasEmail"]).removeprefix("mailto:") if vcard["hasEmail"] else None
    return {"name": str(name), "email": email, "url": str(vcard["hasURL"]) if vcard["hasURL"] else None}


def _dcat_extent(graph: Graph, dataset: Node) -> tuple[float, float, float, float] | None:
    boxes = []
    for location in graph.objects(dataset, DCTERMS.spatial):
        for geometry in _wkt_values(graph, location):
            crs = _WKT_CRS.match(geometry)
            if crs is not None and crs["crs"] != CRS84:
                continue  # another CRS (EPSG:4326 too: latitude first) needs its axis order known
            try:
                bounds = shapely.wkt.loads(_WKT_CRS.sub("", geometry)).bounds
            except (ShapelyError, ValueError):
                continue
            box = _crs84_box(list(bounds))
            if box is not None:
                boxes.append(box)
    return _union(boxes)


def _wkt_values(graph: Graph, location: Node) -> Iterator[str]:
    for predicate in (DCAT.bbox, URIRef("http://www.w3.org/ns/locn#geometry")):
        for value in graph.objects(location, predicate):
            if isinstance(value, Literal) and "wkt" in str(value.datatype or "").lower():
                yield str(value)
