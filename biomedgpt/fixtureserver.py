"""Loopback stand-ins for PubChem, UniProt and E-utilities that serve recorded bodies from a data folder.

Why: the network clients are tested, and the assistant is evaluated (``biomedgpt eval assistant
--fixtures DIR``), against a real HTTP server on 127.0.0.1 (never a monkeypatched ``requests``),
answering with real recorded bodies plus injected faults. The server stamps each request's arrival
time itself (:class:`RecordingHTTPServer`), so callers assert retry counts, order, spacing and rate
limits from the server's own log rather than from their wall clock.

Only ``biomedgpt/commands`` and the tests import this module (it is the front door for fixtures; the
rooms ``core``, ``model``, ``tools``, ``training`` and ``agent`` never do).

The data folder has the layout of the repository's ``tests/data`` (the default; provenance of every
body in ``tests/data/README.md``)::

    pubchem/   compound_cid_5564_2244_property_all.json, compound_cid_2519_5950_property_newkeys.synthetic.json,
               compound_name_aspirin_cids.transcribed.json, compound_name_aspirin_synonyms.json,
               compound_cid_2244_description.synthetic.json, compound_fastsimilarity_2d_cid_2244_cids.synthetic.json,
               compound_name_no_hit_cids_404.json, fault_PUGREST_ServerBusy_503.transcribed.json,
               pug_view_data_compound_2349.json
    uniprot/   uniprotkb_{P05067,A8Y1C3,P0DTR4}.json, uniprotkb_inactive_*.json, uniprotkb_search_*.json, error_*.json
    eutils/    esearch_pubmed.synthetic.json, esearch_pubmed_error.synthetic.json, efetch_pubmed_medline.synthetic.txt

Use::

    with fixture_server("tests/data") as server:           # every service on one server
        settings = get_settings().model_copy(update=service_urls(server))
        ...
        server.count("/rest/pug/")                          # requests PubChem received

Faults: ``inject(server, uri, [busy_json(), busy_html(retry_after=1), ...])`` answers the next
requests to ``uri`` with those responses, in order, before the recorded ones resume.
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
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

#: The repository's recorded bodies (present in a source checkout, not in a wheel).
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "tests" / "data"

GREEN = "Request Count status: Green (0%), Request Time status: Green (0%), Service status: Green (20%)"
EUTILS_PREFIX = "/entrez/eutils"
PROPERTY_URI = re.compile(r"^/rest/pug/compound/cid/property/[^/]+/JSON$")


def data_folder(data: str | Path | None = None) -> Path:
    """``data`` (default: the repository's ``tests/data``), checked for the ``pubchem/``, ``uniprot/``
    and ``eutils/`` folders; a ``FileNotFoundError`` names what is missing."""
    folder = Path(data).expanduser().resolve() if data is not None else DEFAULT_DATA
    missing = [name for name in ("pubchem", "uniprot", "eutils") if not (folder / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"fixture folder {folder} lacks {', '.join(f'{m}/' for m in missing)} "
                                "(expected the layout of the repository's tests/data)")
    return folder


def load_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


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


def service_urls(server: HTTPServer) -> dict[str, str]:
    """The settings fields (``pubchem_url``, ``uniprot_url``, ``eutils_url``) that point every client at ``server``."""
    base = server.base_url if isinstance(server, RecordingHTTPServer) else server.url_for("/").rstrip("/")
    return {"pubchem_url": base, "uniprot_url": base, "eutils_url": base + EUTILS_PREFIX}


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


def busy_json(retry_after: int | None = None, status: int = 503, throttling: str = GREEN,
              data: str | Path | None = None) -> Response:
    """PubChem's ``PUGREST.ServerBusy`` fault (transcribed body from ``data``'s ``pubchem/``)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    body = load_json(data_folder(data) / "pubchem" / "fault_PUGREST_ServerBusy_503.transcribed.json")
    return pubchem_response(body, status, throttling, headers)


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


def truncated(body: str = '{"PropertyTable": {"Properties": [{"CID": 2244, "Molecul', declared: int = 500) -> Response:
    """A 200 that promises ``declared`` bytes (Content-Length) and closes the connection after ``body``:
    the client sees a body cut off mid-transfer (IncompleteRead), as after a dropped proxy connection."""
    response = Response(body, status=200, content_type="application/json")
    response.headers["Content-Length"] = str(max(declared, len(body.encode()) + 1))
    response.headers["Connection"] = "close"
    return response


def streamed(total_bytes: int, chunk: int = 64 * 1024, sent: list[int] | None = None,
             declare_length: bool = False) -> Response:
    """A 200 whose JSON-looking body of ``total_bytes`` is produced chunk by chunk (chunked transfer, or with a
    Content-Length when ``declare_length``); ``sent`` receives the byte count produced so far, so a test can
    see that the client stopped reading early."""
    counter = sent if sent is not None else []
    counter.append(0)

    def generate():
        yield b'{"PropertyTable": {"Properties": [{"CID": 2244, "Title": "'
        produced = 0
        while produced < total_bytes:
            piece = b"x" * min(chunk, total_bytes - produced)
            produced += len(piece)
            counter[0] = produced
            yield piece
        yield b'"}]}}'

    headers = {"Content-Length": str(total_bytes + 64)} if declare_length else {}
    return Response(generate(), status=200, headers=headers, content_type="application/json")


def redirect(location: str, status: int = 302) -> Response:
    """A redirect to ``location`` (a path on the same server, or a URL)."""
    return Response("", status=status, headers={"Location": location})


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

# Names → CIDs. aspirin is the transcribed live answer; the others are SYNTHETIC (documented
# IdentifierList shape), chosen among compounds whose properties are served. "L-Alanine" deliberately
# lists caffeine first so that candidate ranking (exact title first) is exercised.
NAME_CIDS = {"aspirin": None, "caffeine": [2519], "l-alanine": [2519, 5950], "triclosan": [5564]}
PROPERTY_FILES = ("compound_cid_5564_2244_property_all.json", "compound_cid_2519_5950_property_newkeys.synthetic.json")


def property_rows(data: str | Path | None = None) -> dict[int, dict]:
    """The served PubChem property rows by CID."""
    folder = data_folder(data) / "pubchem"
    rows: dict[int, dict] = {}
    for name in PROPERTY_FILES:
        for row in load_json(folder / name)["PropertyTable"]["Properties"]:
            rows[int(row["CID"])] = row
    return rows


def _canonical(smiles: str) -> str | None:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    return Chem.MolToSmiles(mol) if mol is not None else None


def serve_pubchem(server: HTTPServer, data: str | Path | None = None) -> None:
    """PUG-REST and PUG-View routes for aspirin (2244), triclosan (5564), caffeine (2519), L-alanine (5950), Cillin (2349)."""
    folder = data_folder(data) / "pubchem"
    rows = property_rows(data)

    def not_found(message: str = "No CID found", detail: str = "No CID found that matches the given name") -> Response:
        body = load_json(folder / "compound_name_no_hit_cids_404.json")
        body["Fault"]["Message"] = message
        body["Fault"]["Details"] = [detail]
        return pubchem_response(body, 404)

    def properties(request: Request) -> Response:
        raw = request.form.get("cid", "") or request.args.get("cid", "")
        cids = [int(c) for c in re.split(r"[,\s]+", raw) if c.strip().isdigit()]
        found = [rows[c] for c in cids if c in rows]
        if not found:
            return not_found("No CID found", f"No records for CIDs {raw}")
        return pubchem_response({"PropertyTable": {"Properties": found}})

    def by_name(request: Request) -> Response:
        name = unquote(request.path.split("/")[5]).strip().lower()
        if name == "aspirin":
            return pubchem_response(load_json(folder / "compound_name_aspirin_cids.transcribed.json"))
        if name in NAME_CIDS:
            return pubchem_response({"IdentifierList": {"CID": NAME_CIDS[name]}})
        return not_found()

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
        return pubchem_response({"IdentifierList": {"CID": cids}}) if cids else not_found()

    def synonyms(request: Request) -> Response:
        cid = int(request.path.split("/")[5])
        if cid == 2244:
            return pubchem_response(load_json(folder / "compound_name_aspirin_synonyms.json"))
        return not_found("No CID found", f"No synonyms for CID {cid}")

    def description(request: Request) -> Response:
        cid = int(request.path.split("/")[5])
        if cid == 2244:
            return pubchem_response(load_json(folder / "compound_cid_2244_description.synthetic.json"))
        if cid in rows or cid == 2349:
            # Compounds without descriptions answer with just their title (SYNTHETIC shape).
            title = rows.get(cid, {}).get("Title", "Cillin" if cid == 2349 else "")
            return pubchem_response({"InformationList": {"Information": [{"CID": cid, "Title": title}]}})
        return not_found()

    def pug_view(request: Request) -> Response:
        cid = int(request.path.split("/")[5])
        if cid == 2349:
            return pubchem_response(load_json(folder / "pug_view_data_compound_2349.json"))
        return pubchem_response({"Fault": {"Code": "PUGVIEW.NotFound", "Message": f"No record data for CID {cid}"}},
                                404)

    def similarity(request: Request) -> Response:
        cid = int(request.path.split("/")[6])
        if cid == 2244:
            return pubchem_response(load_json(folder / "compound_fastsimilarity_2d_cid_2244_cids.synthetic.json"))
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


def serve_uniprot(server: HTTPServer, data: str | Path | None = None) -> None:
    """UniProtKB entry and search routes (recorded entries; search headers and page 2 SYNTHETIC)."""
    folder = data_folder(data) / "uniprot"
    base = service_urls(server)["uniprot_url"]

    def entry(request: Request) -> Response:
        accession = request.path.split("/")[2].removesuffix(".json")
        if accession in UNIPROT_ENTRIES:
            return json_response(load_json(folder / UNIPROT_ENTRIES[accession]))
        body = load_json(folder / "error_404_resource_not_found.transcribed.json")
        body["url"] = f"http://rest.uniprot.org/uniprotkb/{accession}"
        return json_response(body, 404)

    def search(request: Request) -> Response:
        query = request.args.get("query", "")
        if "nosuchfield" in query:
            return json_response(load_json(folder / "error_400_invalid_search_field.transcribed.json"), 400)
        if query.count("(") != query.count(")"):
            return json_response(load_json(folder / "error_400_invalid_query_syntax.transcribed.json"), 400)
        if "glucose" in query:
            if request.args.get("cursor") == "page2":
                entries = [load_json(folder / UNIPROT_ENTRIES[a]) for a in ("P0DTR4", "A8Y1C3")]
                return json_response({"results": entries}, headers={"X-Total-Results": "4"})
            size = request.args.get("size", "2")
            page = load_json(folder / "uniprotkb_search_glucose_size2_facets.json")
            link = f'<{base}/uniprotkb/search?query=glucose&size={size}&format=json&cursor=page2>; rel="next"'
            return json_response(page, headers={"X-Total-Results": "4", "Link": link})
        if re.search(r'"(APP|amyloid-beta precursor protein)"', query, re.I) and "organism_id:10090" not in query:
            return json_response({"results": [load_json(folder / "uniprotkb_P05067.json")]},
                                 headers={"X-Total-Results": "1"})
        return json_response(load_json(folder / "uniprotkb_search_no_results.json"),
                             headers={"X-Total-Results": "0"})

    server.expect_request(re.compile(r"^/uniprotkb/search$")).respond_with_handler(search)
    server.expect_request(re.compile(r"^/uniprotkb/[A-Za-z0-9]+(\.json)?$")).respond_with_handler(entry)


# ----------------------------------------------------------------------------------------------
# E-utilities
# ----------------------------------------------------------------------------------------------


def serve_eutils(server: HTTPServer, data: str | Path | None = None) -> None:
    """ESearch (JSON) and EFetch (MEDLINE) with SYNTHETIC bodies in NCBI's documented shape."""
    folder = data_folder(data) / "eutils"

    def esearch(request: Request) -> Response:
        values = request.form if request.method == "POST" else request.args
        if not values.get("term", "").strip():
            return json_response(load_json(folder / "esearch_pubmed_error.synthetic.json"))
        body = load_json(folder / "esearch_pubmed.synthetic.json")
        retmax = int(values.get("retmax", "20"))
        body["esearchresult"]["idlist"] = body["esearchresult"]["idlist"][:retmax]
        return json_response(body)

    def efetch(request: Request) -> Response:
        values = request.form if request.method == "POST" else request.args
        wanted = set(values.get("id", "").split(","))
        text = (folder / "efetch_pubmed_medline.synthetic.txt").read_text()
        records = [r for r in text.strip().split("\n\n") if r.split("\n")[0].split("- ")[-1].strip() in wanted]
        return Response("\n" + "\n\n".join(records) + "\n", content_type="text/plain; charset=UTF-8")

    server.expect_request(f"{EUTILS_PREFIX}/esearch.fcgi").respond_with_handler(esearch)
    server.expect_request(f"{EUTILS_PREFIX}/efetch.fcgi").respond_with_handler(efetch)


def serve_all(server: HTTPServer, data: str | Path | None = None) -> None:
    """Register PubChem, UniProt and E-utilities on ``server``, answering from ``data``."""
    folder = data_folder(data)
    serve_pubchem(server, folder)
    serve_uniprot(server, folder)
    serve_eutils(server, folder)


@contextmanager
def fixture_server(data: str | Path | None = None) -> Iterator[RecordingHTTPServer]:
    """A started :class:`RecordingHTTPServer` serving every service from ``data``; stopped on exit
    (its arrival log stays readable afterwards). werkzeug's per-request log lines are silenced meanwhile."""
    import logging

    folder = data_folder(data)
    werkzeug_log = logging.getLogger("werkzeug")
    level = werkzeug_log.level
    werkzeug_log.setLevel(logging.ERROR)
    server = RecordingHTTPServer()
    server.start()  # first: the UniProt routes put the server's own address in their Link headers
    try:
        serve_all(server, folder)
        yield server
    finally:
        if server.is_running():
            server.stop()
        werkzeug_log.setLevel(level)


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


@contextmanager
def resetting_server() -> Iterator[ResettingServer]:
    with ResettingServer() as server:
        yield server
