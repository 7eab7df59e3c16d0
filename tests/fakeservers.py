"""Loopback stand-ins for PubChem, UniProt and E-utilities that serve recorded bodies: ``from tests.fakeservers import ...``.

Why: every network client is tested against a real HTTP server on 127.0.0.1 (never a monkeypatched
``requests``), answering with the real bodies recorded in ``tests/data`` (provenance in
``tests/data/README.md``), plus injected faults. The server stamps each request's arrival time
itself (:class:`RecordingHTTPServer`), so tests assert retry counts, order, spacing and rate limits
from the server's own log rather than from the test's wall clock.

Use in a test module or conftest::

    from tests.fakeservers import fake_services, recording_server  # noqa: F401  (pytest fixtures)

    def test_x(fake_services):
        PubChemClient().compound("aspirin")             # served from tests/data/pubchem
        assert fake_services.count("/rest/pug/") >= 1

``fake_services`` registers every service on one session-wide server, points ``BIOMEDGPT_*_URL`` at
it, sets small timeouts and backoffs, and empties the HTTP cache and rate-limit state so each test
starts cold. Faults: ``inject(server, uri, [busy_json(), busy_html(retry_after=1), ...])`` answers
the next requests to ``uri`` with those responses, in order, before the recorded ones resume.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

DATA = Path(__file__).resolve().parent / "data"
PUBCHEM_DATA = DATA / "pubchem"
UNIPROT_DATA = DATA / "uniprot"
EUTILS_DATA = DATA / "eutils"

GREEN = "Request Count status: Green (0%), Request Time status: Green (0%), Service status: Green (20%)"
EUTILS_PREFIX = "/entrez/eutils"

# Environment for fast tests: tiny backoffs, few retries, short timeouts (all still real sleeps).
FAST_HTTP_ENV = {
    "BIOMEDGPT_HTTP__CONNECT_TIMEOUT": "2",
    "BIOMEDGPT_HTTP__READ_TIMEOUT": "3",
    "BIOMEDGPT_HTTP__MAX_RETRIES": "2",
    "BIOMEDGPT_HTTP__BACKOFF_FACTOR": "0.05",
    "BIOMEDGPT_HTTP__BACKOFF_JITTER": "0.01",
    "BIOMEDGPT_HTTP__BACKOFF_MAX": "2",
}


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------
# The server and its own log
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """One request as the server saw it; ``t`` is ``time.monotonic()`` taken by the server on arrival."""

    t: float
    method: str
    path: str
    query: str
    body: str


class RecordingHTTPServer(HTTPServer):
    """pytest-httpserver's server (threaded, so a stalled answer does not hold up the next request)
    that stamps every request's arrival before dispatching it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port, threaded=True)
        self.arrivals: list[Arrival] = []
        self._arrivals_lock = threading.Lock()

    def dispatch(self, request: Request) -> Response:
        stamp = time.monotonic()
        body = request.get_data(as_text=True)
        with self._arrivals_lock:
            self.arrivals.append(Arrival(stamp, request.method, request.path,
                                         request.query_string.decode("latin-1"), body))
        return super().dispatch(request)

    def clear(self) -> None:
        super().clear()
        with self._arrivals_lock:
            self.arrivals.clear()

    @property
    def base_url(self) -> str:
        return self.url_for("/").rstrip("/")

    def requests_to(self, prefix: str = "", method: str | None = None) -> list[Arrival]:
        """The arrivals whose path starts with ``prefix`` (and whose method is ``method``), in order."""
        with self._arrivals_lock:
            return [a for a in self.arrivals if a.path.startswith(prefix) and (method is None or a.method == method)]

    def count(self, prefix: str = "", method: str | None = None) -> int:
        return len(self.requests_to(prefix, method))


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most arrivals that fall within any half-open window of ``window`` seconds."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def gaps(arrivals: Sequence[Arrival]) -> list[float]:
    """Seconds between consecutive arrivals."""
    return [b.t - a.t for a, b in zip(arrivals, arrivals[1:])]


# ----------------------------------------------------------------------------------------------
# Responses, recorded and faulty
# ----------------------------------------------------------------------------------------------


def json_response(data: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=headers or {}, content_type="application/json")


def pubchem_response(data: object, status: int = 200, throttling: str = GREEN, headers: dict | None = None) -> Response:
    """A PubChem answer: every real one carries ``X-Throttling-Control``."""
    return json_response(data, status, {"X-Throttling-Control": throttling, **(headers or {})})


def throttling_header(colour: str, percent: int = 80, which: str = "Request Count") -> str:
    """An ``X-Throttling-Control`` value with ``which`` at ``colour`` and the other statuses Green."""
    parts = {"Request Count": "Green (0%)", "Request Time": "Green (0%)", "Service": "Green (20%)"}
    parts[which] = f"{colour} ({percent}%)"
    return ", ".join(f"{name} status: {value}" for name, value in parts.items())


def busy_json(retry_after: int | None = None, status: int = 503, throttling: str = GREEN) -> Response:
    """PubChem's ``PUGREST.ServerBusy`` fault (transcribed body)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return pubchem_response(load_json(PUBCHEM_DATA / "fault_PUGREST_ServerBusy_503.transcribed.json"), status,
                            throttling, headers)


BUSY_HTML = """<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">
<html><head>
<title>503 Service Unavailable</title>
</head><body>
<h1>Service Unavailable</h1>
<p>The server is temporarily unable to service your
request due to maintenance downtime or capacity
problems. Please try again later.</p>
</body></html>
"""


def busy_html(retry_after: int | None = None, status: int = 503) -> Response:
    """A front-end 503 as an HTML page (Apache's standard text; SYNTHETIC, see tests/data/README.md)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Response(BUSY_HTML, status=status, headers=headers, content_type="text/html; charset=iso-8859-1")


def too_many_requests(retry_after: int | None = None) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Response("Too Many Requests", status=429, headers=headers, content_type="text/plain")


def malformed_json() -> Response:
    """A 200 whose body is cut off mid-JSON (what a dropped proxy buffer looks like)."""
    return Response('{"PropertyTable": {"Properties": [{"CID": 2244, "Molecul', status=200,
                    content_type="application/json")


def stalled(seconds: float, then: Response | None = None):
    """A handler that answers only after ``seconds`` (longer than the client's read timeout)."""

    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return then or json_response({"late": True})

    return handler


def inject(server: HTTPServer, uri: str | re.Pattern, responses: Sequence[Response | object],
           method: str | None = None) -> None:
    """Answer the next ``len(responses)`` requests to ``uri`` with ``responses`` (Responses or handlers), in order.

    One-shot handlers win over the permanent (recorded) ones, so once they are used up the recorded
    answers resume: ``inject(server, url, [busy_json(), busy_json()])`` makes the third try succeed.
    """
    kwargs = {"method": method} if method else {}
    for item in responses:
        expectation = server.expect_oneshot_request(uri, **kwargs)
        if isinstance(item, Response):
            expectation.respond_with_response(item)
        else:
            expectation.respond_with_handler(item)


# ----------------------------------------------------------------------------------------------
# PubChem
# ----------------------------------------------------------------------------------------------

PROPERTY_URI = re.compile(r"^/rest/pug/compound/cid/property/[^/]+/JSON$")

# Names → CIDs. aspirin is the transcribed live answer; the others are SYNTHETIC (documented
# IdentifierList shape), chosen among compounds whose properties are served. "L-Alanine" deliberately
# lists caffeine first so that candidate ranking (exact title first) is exercised.
NAME_CIDS = {"aspirin": None, "caffeine": [2519], "l-alanine": [2519, 5950], "triclosan": [5564]}


def _property_rows() -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for name in ("compound_cid_5564_2244_property_all.json", "compound_cid_2519_5950_property_newkeys.synthetic.json"):
        for row in load_json(PUBCHEM_DATA / name)["PropertyTable"]["Properties"]:
            rows[int(row["CID"])] = row
    return rows


def _not_found(message: str = "No CID found", detail: str = "No CID found that matches the given name") -> Response:
    body = load_json(PUBCHEM_DATA / "compound_name_no_hit_cids_404.json")
    body["Fault"]["Message"] = message
    body["Fault"]["Details"] = [detail]
    return pubchem_response(body, 404)


def _canonical(smiles: str) -> str | None:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def serve_pubchem(server: HTTPServer) -> None:
    """PUG-REST and PUG-View routes for aspirin (2244), triclosan (5564), caffeine (2519), L-alanine (5950), Cillin (2349)."""
    rows = _property_rows()

    def properties(request: Request) -> Response:
        raw = request.form.get("cid", "") or request.args.get("cid", "")
        cids = [int(c) for c in re.split(r"[,\s]+", raw) if c.strip().isdigit()]
        found = [rows[c] for c in cids if c in rows]
        if not found:
            return _not_found("No CID found", f"No records for CIDs {raw}")
        return pubchem_response({"PropertyTable": {"Properties": found}})

    def by_name(request: Request) -> Response:
        name = unquote(request.path.split("/")[5]).strip().lower()
        if name == "aspirin":
            return pubchem_response(load_json(PUBCHEM_DATA / "compound_name_aspirin_cids.transcribed.json"))
        if name in NAME_CIDS:
            return pubchem_response({"IdentifierList": {"CID": NAME_CIDS[name]}})
        return _not_found()

    def by_smiles(request: Request) -> Response:
        if request.method == "POST":
            smiles = request.form.get("smiles", "")
        else:
            smiles = unquote(request.path[len("/rest/pug/compound/smiles/"):-len("/cids/JSON")])
        key = _canonical(smiles)
        if key is None:
            return pubchem_response({"Fault": {"Code": "PUGREST.BadRequest", "Message": "Unable to standardize the "
                                               "given structure - perhaps some special characters need to be escaped "
                                               "or data packed in MIME form?"}}, 400)
        for cid, row in rows.items():
            smi = row.get("SMILES") or row.get("IsomericSMILES")
            if smi and _canonical(smi) == key:
                return pubchem_response({"IdentifierList": {"CID": [cid]}})
        return pubchem_response({"IdentifierList": {"CID": [0]}})  # PubChem's answer for an unknown structure

    def by_inchikey(request: Request) -> Response:
        key = request.path.split("/")[5]
        cids = [cid for cid, row in rows.items() if row.get("InChIKey") == key]
        return pubchem_response({"IdentifierList": {"CID": cids}}) if cids else _not_found()

    def synonyms(request: Request) -> Response:
        cid = int(request.path.split("/")[5])
        if cid == 2244:
            return pubchem_response(load_json(PUBCHEM_DATA / "compound_name_aspirin_synonyms.json"))
        return _not_found("No CID found", f"No synonyms for CID {cid}")

    def description(request: Request) -> Response:
        cid = int(request.path.split("/")[5])
        if cid == 2244:
            return pubchem_response(load_json(PUBCHEM_DATA / "compound_cid_2244_description.synthetic.json"))
        if cid in rows or cid == 2349:
            # Compounds without descriptions answer with just their title (SYNTHETIC shape).
            title = rows.get(cid, {}).get("Title", "Cillin" if cid == 2349 else "")
            return pubchem_response({"InformationList": {"Information": [{"CID": cid, "Title": title}]}})
        return _not_found()

    def pug_view(request: Request) -> Response:
        cid = int(request.path.split("/")[5])
        if cid == 2349:
            return pubchem_response(load_json(PUBCHEM_DATA / "pug_view_data_compound_2349.json"))
        return pubchem_response({"Fault": {"Code": "PUGVIEW.NotFound", "Message": f"No record data for CID {cid}"}},
                                404)

    def similarity(request: Request) -> Response:
        cid = int(request.path.split("/")[6])
        if cid == 2244:
            return pubchem_response(load_json(PUBCHEM_DATA / "compound_fastsimilarity_2d_cid_2244_cids.synthetic.json"))
        return pubchem_response({"IdentifierList": {"CID": [cid]}})

    def similarity_by_smiles(request: Request) -> Response:
        # SYNTHETIC neighbours: RDKit Morgan-fingerprint Tanimoto over the served compounds (PubChem
        # itself uses its 881-bit substructure keys), most similar first, as many as MaxRecords allows.
        from rdkit import Chem, DataStructs, rdBase
        from rdkit.Chem import rdFingerprintGenerator

        if request.method == "POST":
            smiles = request.form.get("smiles", "")
        else:
            smiles = unquote(request.path[len("/rest/pug/compound/fastsimilarity_2d/smiles/"):-len("/cids/JSON")])
        generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        with rdBase.BlockLogs():
            query = Chem.MolFromSmiles(smiles)
        if query is None:
            return pubchem_response({"Fault": {"Code": "PUGREST.BadRequest",
                                               "Message": "Unable to standardize the given structure"}}, 400)
        threshold = int(request.args.get("Threshold", "90")) / 100
        limit = int(request.args.get("MaxRecords", "2000000"))
        query_fp = generator.GetFingerprint(query)
        scored = []
        for cid, row in rows.items():
            mol = Chem.MolFromSmiles(row.get("SMILES") or row.get("IsomericSMILES"))
            score = DataStructs.TanimotoSimilarity(query_fp, generator.GetFingerprint(mol))
            if score >= threshold:
                scored.append((score, cid))
        return pubchem_response({"IdentifierList": {"CID": [cid for _, cid in sorted(scored, reverse=True)][:limit]}})

    server.expect_request(PROPERTY_URI, method="POST").respond_with_handler(properties)
    server.expect_request(re.compile(r"^/rest/pug/compound/fastsimilarity_2d/smiles/.+/JSON$")) \
        .respond_with_handler(similarity_by_smiles)
    server.expect_request(re.compile(r"^/rest/pug/compound/name/[^/]+/cids/JSON$")).respond_with_handler(by_name)
    server.expect_request(re.compile(r"^/rest/pug/compound/smiles/.+/JSON$")).respond_with_handler(by_smiles)
    server.expect_request(re.compile(r"^/rest/pug/compound/inchikey/[^/]+/cids/JSON$")).respond_with_handler(by_inchikey)
    server.expect_request(re.compile(r"^/rest/pug/compound/cid/\d+/synonyms/JSON$")).respond_with_handler(synonyms)
    server.expect_request(re.compile(r"^/rest/pug/compound/cid/\d+/description/JSON$")).respond_with_handler(description)
    server.expect_request(re.compile(r"^/rest/pug_view/data/compound/\d+/JSON$")).respond_with_handler(pug_view)
    server.expect_request(re.compile(r"^/rest/pug/compound/fastsimilarity_2d/cid/\d+/cids/JSON$")) \
        .respond_with_handler(similarity)


# ----------------------------------------------------------------------------------------------
# UniProt
# ----------------------------------------------------------------------------------------------

UNIPROT_ENTRIES = {
    "P05067": "uniprotkb_P05067.json",
    "A8Y1C3": "uniprotkb_A8Y1C3.json",
    "P0DTR4": "uniprotkb_P0DTR4.json",
    "I8FBX0": "uniprotkb_inactive_deleted_I8FBX0.json",
    "Q00007": "uniprotkb_inactive_demerged_Q00007.json",
}


def serve_uniprot(server: HTTPServer) -> None:
    """UniProtKB entry and search routes (recorded entries; search headers and page 2 SYNTHETIC)."""
    base = server.base_url

    def entry(request: Request) -> Response:
        accession = request.path.split("/")[2].removesuffix(".json")
        if accession in UNIPROT_ENTRIES:
            return json_response(load_json(UNIPROT_DATA / UNIPROT_ENTRIES[accession]))
        body = load_json(UNIPROT_DATA / "error_404_resource_not_found.transcribed.json")
        body["url"] = f"http://rest.uniprot.org/uniprotkb/{accession}"
        return json_response(body, 404)

    def search(request: Request) -> Response:
        query = request.args.get("query", "")
        if "nosuchfield" in query:
            return json_response(load_json(UNIPROT_DATA / "error_400_invalid_search_field.transcribed.json"), 400)
        if query.count("(") != query.count(")"):
            return json_response(load_json(UNIPROT_DATA / "error_400_invalid_query_syntax.transcribed.json"), 400)
        if "glucose" in query:
            if request.args.get("cursor") == "page2":
                entries = [load_json(UNIPROT_DATA / UNIPROT_ENTRIES[a]) for a in ("P0DTR4", "A8Y1C3")]
                return json_response({"results": entries}, headers={"X-Total-Results": "4"})
            size = request.args.get("size", "2")
            page = load_json(UNIPROT_DATA / "uniprotkb_search_glucose_size2_facets.json")
            link = f'<{base}/uniprotkb/search?query=glucose&size={size}&format=json&cursor=page2>; rel="next"'
            return json_response(page, headers={"X-Total-Results": "4", "Link": link})
        if re.search(r'"(APP|amyloid-beta precursor protein)"', query, re.I) and "organism_id:10090" not in query:
            return json_response({"results": [load_json(UNIPROT_DATA / "uniprotkb_P05067.json")]},
                                 headers={"X-Total-Results": "1"})
        return json_response(load_json(UNIPROT_DATA / "uniprotkb_search_no_results.json"),
                             headers={"X-Total-Results": "0"})

    server.expect_request(re.compile(r"^/uniprotkb/search$")).respond_with_handler(search)
    server.expect_request(re.compile(r"^/uniprotkb/[A-Za-z0-9]+(\.json)?$")).respond_with_handler(entry)


# ----------------------------------------------------------------------------------------------
# E-utilities
# ----------------------------------------------------------------------------------------------


def serve_eutils(server: HTTPServer) -> None:
    """ESearch (JSON) and EFetch (MEDLINE) with SYNTHETIC bodies in NCBI's documented shape."""

    def esearch(request: Request) -> Response:
        values = request.form if request.method == "POST" else request.args
        if not values.get("term", "").strip():
            return json_response(load_json(EUTILS_DATA / "esearch_pubmed_error.synthetic.json"))
        body = load_json(EUTILS_DATA / "esearch_pubmed.synthetic.json")
        retmax = int(values.get("retmax", "20"))
        body["esearchresult"]["idlist"] = body["esearchresult"]["idlist"][:retmax]
        return json_response(body)

    def efetch(request: Request) -> Response:
        values = request.form if request.method == "POST" else request.args
        wanted = set(values.get("id", "").split(","))
        text = (EUTILS_DATA / "efetch_pubmed_medline.synthetic.txt").read_text()
        records = [r for r in text.strip().split("\n\n") if r.split("\n")[0].split("- ")[-1].strip() in wanted]
        return Response("\n" + "\n\n".join(records) + "\n", content_type="text/plain; charset=UTF-8")

    server.expect_request(f"{EUTILS_PREFIX}/esearch.fcgi").respond_with_handler(esearch)
    server.expect_request(f"{EUTILS_PREFIX}/efetch.fcgi").respond_with_handler(efetch)


def serve_all(server: HTTPServer) -> None:
    serve_pubchem(server)
    serve_uniprot(server)
    serve_eutils(server)


# ----------------------------------------------------------------------------------------------
# A server that resets connections (werkzeug cannot)
# ----------------------------------------------------------------------------------------------


class ResettingServer:
    """Accepts each connection, reads the request, then aborts it with a TCP RST (SO_LINGER 0)."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._sock.getsockname()
        return f"http://{host}:{port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                self.arrivals.append(time.monotonic())
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def __enter__(self) -> ResettingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


# ----------------------------------------------------------------------------------------------
# Fixtures (import them into a conftest or test module to use them)
# ----------------------------------------------------------------------------------------------


@dataclass
class FakeServices:
    """What ``fake_services`` hands a test: the server and the URLs it serves."""

    server: RecordingHTTPServer
    pubchem_url: str
    uniprot_url: str
    eutils_url: str
    env: dict = field(default_factory=dict)

    def count(self, prefix: str = "", method: str | None = None) -> int:
        return self.server.count(prefix, method)

    def requests_to(self, prefix: str = "", method: str | None = None) -> list[Arrival]:
        return self.server.requests_to(prefix, method)


def point_settings_at(monkeypatch: pytest.MonkeyPatch, server: HTTPServer, fast: bool = True) -> dict:
    """Point every service URL at ``server`` (and use fast timeouts/backoffs); returns the variables set."""
    base = server.base_url if isinstance(server, RecordingHTTPServer) else server.url_for("/").rstrip("/")
    env = {
        "BIOMEDGPT_PUBCHEM_URL": base,
        "BIOMEDGPT_UNIPROT_URL": base,
        "BIOMEDGPT_EUTILS_URL": base + EUTILS_PREFIX,
        **(FAST_HTTP_ENV if fast else {}),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BIOMEDGPT_OFFLINE", raising=False)
    return env


def clear_http_state() -> None:
    """Forget sessions, rate-limit/throttle state and the HTTP cache file of the current settings."""
    from biomedgpt.settings import get_settings, reset_settings
    from biomedgpt.tools.http import CACHE_FILE, reset_sessions

    reset_sessions()
    reset_settings()
    home = get_settings().home
    for path in home.glob(f"{CACHE_FILE}*"):
        path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def recording_server() -> Iterator[RecordingHTTPServer]:
    server = RecordingHTTPServer()
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


@pytest.fixture
def fake_services(recording_server: RecordingHTTPServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServices]:
    """All three services on the session server, with a cold cache and fresh rate-limit state."""
    recording_server.clear()
    serve_all(recording_server)
    env = point_settings_at(monkeypatch, recording_server)
    clear_http_state()
    base = recording_server.base_url
    yield FakeServices(recording_server, base, base, base + EUTILS_PREFIX, env)
    clear_http_state()
    recording_server.clear()


@contextmanager
def resetting_server() -> Iterator[ResettingServer]:
    with ResettingServer() as server:
        yield server
