"""Fault injection against the loopback PubChem/UniProt/E-utilities server (issue 13): ``pytest -q tests/tools/test_faults.py``.

One test (or a parametrised group) per defect the fault-injection pass found. Counts come from the
server's own request log; time bounds, where there are any, use small configured limits and a 3×
margin. Nothing here asserts speed.
"""

from __future__ import annotations

import contextvars
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from werkzeug import Response

from biomedgpt.core.settings import get_settings, reset_settings
from biomedgpt.tools.errors import ServiceError, Throttled
from biomedgpt.tools.eutils import EUtilsClient
from biomedgpt.tools.http import cache_path, request_scope
from biomedgpt.tools.services import reset_services
from biomedgpt.tools.pubchem import PubChemClient
from biomedgpt.tools.uniprot import UniProtClient
from tests.fakeservers import (
    PROPERTY_URI,
    busy_json,
    inject,
    json_response,
    max_in_window,
    pubchem_response,
    redirect,
    stalled,
    streamed,
    throttling_header,
    truncated,
)

REPO = Path(__file__).resolve().parents[2]
PROPS = "/rest/pug/compound/cid/property/"
NAME = "/rest/pug/compound/name/"
ENTRY = "/uniprotkb/P05067.json"


# -- 1. wrong shapes are errors and never cached ------------------------------------------------------

WRONG_PROPERTY_TABLES = {
    "empty table": {"PropertyTable": {"Properties": []}},
    "no Properties": {"PropertyTable": {}},
    "no PropertyTable": {"Result": "ok"},
    "CID not a number": {"PropertyTable": {"Properties": [{"CID": "abc", "Title": "Aspirin"}]}},
    "Title an object": {"PropertyTable": {"Properties": [{"CID": 2244, "Title": {"text": "Aspirin"}}]}},
    "a list at the top": [{"CID": 2244}],
}


@pytest.mark.parametrize("body", WRONG_PROPERTY_TABLES.values(), ids=WRONG_PROPERTY_TABLES.keys())
def test_a_property_table_of_the_wrong_shape_is_an_error_and_not_cached(fake_services, body):
    inject(fake_services.server, PROPERTY_URI, [pubchem_response(body)])
    client = PubChemClient()

    with pytest.raises(ServiceError) as caught:
        client.by_cid(2244, details=False)
    message = str(caught.value)
    assert message.startswith("PubChem: CID 2244") and "wrong shape" in message

    assert client.by_cid(2244, details=False).cid == 2244  # asked again: the bad answer was not replayed
    assert fake_services.count(PROPS) == 2


@pytest.mark.parametrize("body", [{"IdentifierList": {}}, {"IdentifierList": {"CID": []}},
                                  {"IdentifierList": {"CID": ["x"]}}], ids=["no CID", "empty CID", "CID text"])
def test_an_identifier_list_without_cids_is_an_error_for_a_name_look_up(fake_services, body):
    inject(fake_services.server, f"{NAME}caffeine/cids/JSON", [pubchem_response(body)])
    client = PubChemClient()

    with pytest.raises(ServiceError) as caught:
        client.cids_for_name("caffeine")
    assert "wrong shape" in str(caught.value) and "IdentifierList" in str(caught.value)

    assert client.cids_for_name("caffeine") == [2519]
    assert fake_services.count(f"{NAME}caffeine/") == 2


def test_a_similarity_search_without_hits_is_a_valid_answer_and_cached(fake_services):
    uri = "/rest/pug/compound/fastsimilarity_2d/cid/5950/cids/JSON"
    inject(fake_services.server, uri, [pubchem_response({"IdentifierList": {"CID": []}})])
    client = PubChemClient()

    assert client.similar(5950) == []
    assert client.similar(5950) == []
    assert fake_services.count("/rest/pug/compound/fastsimilarity_2d/") == 1


@pytest.mark.parametrize("body", [{"results": []}, {"entryType": "UniProtKB reviewed (Swiss-Prot)"},
                                  {"primaryAccession": ""}, {"primaryAccession": "P05067", "genes": "APP"}],
                         ids=["empty results", "no accession", "empty accession", "genes a string"])
def test_a_uniprot_entry_without_an_accession_is_an_error_and_not_cached(fake_services, body):
    inject(fake_services.server, ENTRY, [json_response(body)])
    client = UniProtClient()

    with pytest.raises(ServiceError) as caught:
        client.entry("P05067")
    message = str(caught.value)
    assert message.startswith("UniProt: accession P05067") and "wrong shape" in message

    assert client.entry("P05067").accession == "P05067"
    assert fake_services.count(ENTRY) == 2


def test_a_uniprot_search_without_hits_is_valid_and_cached(fake_services):
    client = UniProtClient()
    assert client.search("nosuchprotein").entries == []
    assert client.search("nosuchprotein").entries == []
    assert fake_services.count("/uniprotkb/search") == 1


def test_a_search_hit_without_an_accession_is_an_error(fake_services):
    inject(fake_services.server, "/uniprotkb/search", [json_response({"results": [{"uniProtkbId": "X"}]})])
    with pytest.raises(ServiceError) as caught:
        UniProtClient().search("glucose", size=2)
    assert "wrong shape" in str(caught.value) and "primaryAccession" in str(caught.value)


def test_eutils_answers_of_the_wrong_shape_are_errors_and_not_cached(fake_services):
    inject(fake_services.server, "/entrez/eutils/esearch.fcgi", [json_response({"esearchresult": {"idlist": 7}})])
    inject(fake_services.server, "/entrez/eutils/efetch.fcgi",
           [Response("<html><title>Maintenance</title></html>", content_type="text/html")])
    client = EUtilsClient()

    with pytest.raises(ServiceError) as caught:
        client.search_pubmed("BRCA1", 2)
    assert "NCBI E-utilities" in str(caught.value) and "wrong shape" in str(caught.value)
    pmids = client.search_pubmed("BRCA1", 2)
    assert pmids == ["10192393", "10196379"]

    with pytest.raises(ServiceError) as caught:
        client.fetch_records(pmids)
    assert "MEDLINE" in str(caught.value)
    assert [r["pmid"] for r in client.fetch_records(pmids)] == pmids
    assert fake_services.count("/entrez/eutils/esearch.fcgi") == 2
    assert fake_services.count("/entrez/eutils/efetch.fcgi") == 2


def test_a_poisoned_cache_entry_is_dropped_and_fetched_again(fake_services):
    """An entry cached before validation existed (or by an older version) is checked when read."""
    from requests_cache import CachedSession, SQLiteCache

    inject(fake_services.server, f"{NAME}caffeine/cids/JSON", [pubchem_response({"IdentifierList": {"CID": []}})])
    url = f"{fake_services.pubchem_url}{NAME}caffeine/cids/JSON"
    raw = CachedSession(backend=SQLiteCache(str(cache_path(get_settings())), wal=True), expire_after=3600,
                        allowable_methods=("GET", "POST"), match_headers=False, cache_control=False)
    assert raw.get(url).json() == {"IdentifierList": {"CID": []}}
    raw.close()  # the poisoned answer is now in the shared cache file

    assert PubChemClient().cids_for_name("caffeine") == [2519]  # dropped when read, fetched again
    assert PubChemClient().cids_for_name("caffeine") == [2519]  # and the good answer is cached
    assert fake_services.count(f"{NAME}caffeine/") == 2


# -- 3. a size cap, streamed and refused early ----------------------------------------------------------


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_an_oversized_answer_is_refused_early_and_not_cached(fake_services, http_env, declare_length):
    http_env(max_response_bytes=200_000)
    sent: list[int] = []
    total = 20 * 1024 * 1024
    inject(fake_services.server, PROPERTY_URI, [streamed(total, sent=sent, declare_length=declare_length)])
    client = PubChemClient()

    with pytest.raises(ServiceError) as caught:
        client.by_cid(2244, details=False)
    message = str(caught.value)
    assert message.startswith("PubChem: CID 2244") and "200,000 bytes" in message and "max_response_bytes" in message
    assert len(message) < 400

    assert client.by_cid(2244, details=False).formula == "C9H8O4"  # not cached: asked again
    assert fake_services.count(PROPS) == 2
    time.sleep(0.2)
    assert sent[0] < total  # the client stopped reading; the server never finished the body
    client.close()  # every byte of the cache on disk
    size = sum(p.stat().st_size for p in cache_path(get_settings()).parent.glob("http_cache.sqlite*"))
    assert size < 2_000_000


def test_the_size_cap_is_a_setting(monkeypatch):
    monkeypatch.setenv("BIOMEDGPT_HTTP__MAX_RESPONSE_BYTES", "1234")
    monkeypatch.setenv("BIOMEDGPT_HTTP__DEADLINE", "7.5")
    reset_settings()
    assert get_settings().http.max_response_bytes == 1234 and get_settings().http.deadline == 7.5


# -- 8. an overall deadline per look-up ------------------------------------------------------------------


def test_a_stalled_server_is_bounded_by_the_deadline(fake_services, http_env):
    http_env(read_timeout=1, max_retries=10, deadline=2, backoff_factor=0.05)
    inject(fake_services.server, PROPERTY_URI, [stalled(4)] * 11)

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)
    elapsed = time.monotonic() - started

    assert "deadline" in str(caught.value) and "2 s" in str(caught.value)
    assert fake_services.count(PROPS) <= 3  # 2 s of 1 s tries, not 11 tries
    assert elapsed < 3 * 2


def test_backoff_is_bounded_by_the_deadline(fake_services, http_env):
    http_env(max_retries=10, deadline=1.5, backoff_factor=0.4, backoff_jitter=0, backoff_max=10)
    inject(fake_services.server, PROPERTY_URI, [busy_json()] * 11)

    started = time.monotonic()
    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert "deadline" in str(caught.value)
    assert fake_services.count(PROPS) <= 3  # waits 0.4 + 0.8 = 1.2 s fit; the next 1.6 s does not
    assert time.monotonic() - started < 3 * 1.5


# -- 12. resets, truncated bodies and redirect loops -----------------------------------------------------


def test_a_truncated_body_is_retried(fake_services, progress):
    inject(fake_services.server, PROPERTY_URI, [truncated()])

    assert PubChemClient().by_cid(2244, details=False).cid == 2244

    assert fake_services.count(PROPS) == 2
    assert any("retrying" in m for m in progress.messages())


def test_truncated_bodies_exhaust_the_retries_with_a_clear_error(fake_services):
    inject(fake_services.server, PROPERTY_URI, [truncated()] * 3)

    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert "cut off" in str(caught.value) and caught.value.retried == 2
    assert fake_services.count(PROPS) == 3


def test_a_redirect_loop_stops_at_the_cap(fake_services):
    uri = f"{NAME}loop/cids/JSON"
    inject(fake_services.server, uri, [redirect(uri)] * 40)

    with pytest.raises(ServiceError) as caught:
        PubChemClient().cids_for_name("loop")

    assert "redirect" in str(caught.value)
    assert fake_services.count(uri) == 6  # the request and 5 redirects, not 31


# -- 8. identical look-ups in one turn go out once -------------------------------------------------------


def test_identical_failing_look_ups_in_one_turn_are_sent_once(fake_services):
    inject(fake_services.server, ENTRY, [busy_json()] * 12)
    errors = []

    def look_up():
        try:
            UniProtClient().entry("P05067")
        except ServiceError as error:
            errors.append(str(error))

    with request_scope():
        # threads that carry the turn's context (LangGraph runs tools that way)
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(look_up,)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        look_up()  # the same look-up later in the turn: the same answer, nothing sent

    assert len(errors) == 3 and len(set(errors)) == 1
    assert fake_services.count(ENTRY) == 3  # one look-up: the first try and 2 retries


def test_a_turn_that_names_one_accession_twice_fetches_it_once(fake_services):
    from langchain_core.messages import AIMessage

    from biomedgpt.agent.assistant import Assistant
    from tests.agent.helpers import call, fake_llm

    inject(fake_services.server, ENTRY, [busy_json()] * 12)
    llm = fake_llm([
        AIMessage(content="", tool_calls=[call("uniprot_lookup", "c1", query="P05067"),
                                          call("uniprot_lookup", "c2", query="P05067")]),
        AIMessage(content="UniProt is busy."),
    ])
    result = Assistant(llm=llm, tool_choice="model").ask("What is P05067? And what is P05067?")

    assert [c["ok"] for c in result.tool_calls] == [False, False]
    assert fake_services.count(ENTRY) == 3


# -- 5. the rate limit is shared by processes ------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys, time
    from biomedgpt.tools.pubchem import PubChemClient
    start, count = float(sys.argv[1]), int(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    client = PubChemClient()
    for n in range(count):
        client.by_cid([2244, 5564, 2519, 5950][n % 4], details=False)
""")


def _children(fake_services, how_many: int, lookups: int, extra_env: dict) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, **fake_services.env, **extra_env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    start = time.time() + 8.0  # every child imports first, then all start together
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(start), str(lookups)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(how_many)]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        done.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return done


def test_two_processes_share_the_per_second_limit(fake_services, monkeypatch):
    extra = {"BIOMEDGPT_HTTP__PUBCHEM_CACHE_TTL": "0", "BIOMEDGPT_HTTP__PUBCHEM_PER_SECOND": "3"}
    for name, value in extra.items():
        monkeypatch.setenv(name, value)

    children = _children(fake_services, 2, 6, extra)

    assert all(c.returncode == 0 for c in children), [c.stderr[-2000:] for c in children]
    times = [a.t for a in fake_services.requests_to(PROPS)]
    assert len(times) == 12
    assert max_in_window(times, 1.0) <= 3  # both processes together, not 3 each


def test_the_per_minute_limit_holds_across_processes_and_fails_at_the_deadline(fake_services, monkeypatch):
    extra = {"BIOMEDGPT_HTTP__PUBCHEM_CACHE_TTL": "0", "BIOMEDGPT_HTTP__PUBCHEM_PER_MINUTE": "3",
             "BIOMEDGPT_HTTP__DEADLINE": "2"}
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    reset_services()

    children = _children(fake_services, 1, 2, extra)  # another process uses 2 of the 3 per minute
    assert children[0].returncode == 0, children[0].stderr[-2000:]

    client = PubChemClient()
    assert client.by_cid(2244, details=False).cid == 2244  # the third of the minute
    started = time.monotonic()
    with pytest.raises(Throttled) as caught:
        client.by_cid(5564, details=False)  # the fourth would wait about a minute: refused at once
    assert time.monotonic() - started < 3 * 2
    message = str(caught.value)
    assert "3 requests per minute" in message and "deadline" in message
    assert fake_services.count(PROPS) == 3


def test_black_throttling_in_one_process_blocks_the_others(fake_services):
    black = pubchem_response({"PropertyTable": {"Properties": [{"CID": 2244}]}},
                             throttling=throttling_header("Black", 100), headers={"Retry-After": "30"})
    inject(fake_services.server, PROPERTY_URI, [black])
    env = {**os.environ, **fake_services.env, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", "from biomedgpt.tools.pubchem import PubChemClient\n"
                            "try:\n    PubChemClient().by_cid(2244, details=False)\n"
                            "except Exception as e:\n    print(type(e).__name__)"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert "Throttled" in child.stdout, child.stderr[-2000:]

    with pytest.raises(Throttled) as caught:
        PubChemClient().by_cid(5564, details=False)  # this process never saw the header
    assert "blocked" in str(caught.value)
    assert fake_services.count(PROPS) == 1


def test_yellow_throttling_is_shared_by_every_client_in_the_process(fake_services, http_env):
    from biomedgpt.core.settings import Settings

    http_env(pubchem_cache_ttl=0)
    yellow = throttling_header("Yellow", 60)
    body = {"PropertyTable": {"Properties": [{"CID": 2244, "MolecularWeight": "180.16"}]}}
    inject(fake_services.server, PROPERTY_URI, [pubchem_response(body, throttling=yellow)] * 6)

    PubChemClient().by_cid(2244, details=False)  # learns Yellow
    other = Settings(http={**get_settings().http.model_dump(), "read_timeout": 2.5})  # another Assistant's settings
    for _ in range(4):
        PubChemClient(other).by_cid(2244, details=False)

    times = [a.t for a in fake_services.requests_to(PROPS)]
    assert max_in_window(times[1:], 1.0) <= 2  # Yellow halves 5/s for the other client too
