"""The HTTP layer against a real loopback server: retries, Retry-After, faults, throttling, rate limits, cache, offline.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/tools/test_http_layer.py``.
Spacing and rate assertions use arrival times stamped by the server itself.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from biomedgpt.core.settings import reset_settings
from biomedgpt.tools.errors import OfflineMiss, ServiceError, StoreError, Throttled
from biomedgpt.tools.services import reset_services
from biomedgpt.tools.pubchem import PubChemClient
from biomedgpt.tools.ratelimit import NoSlot, SharedRateLimiter
from biomedgpt.tools.throttling import parse_throttling
from tests.fakeservers import (
    PROPERTY_URI,
    busy_html,
    busy_json,
    gaps,
    inject,
    malformed_json,
    max_in_window,
    pubchem_response,
    resetting_server,
    stalled,
    throttling_header,
    too_many_requests,
)

PROPS = "/rest/pug/compound/cid/property/"


# -- retries ---------------------------------------------------------------------------------------


def test_busy_json_without_retry_after_backs_off_exponentially(fake_services, http_env, progress):
    http_env(max_retries=3, backoff_factor=0.2, backoff_jitter=0.02)
    inject(fake_services.server, PROPERTY_URI, [busy_json(), busy_json(), busy_json()])

    compound = PubChemClient().by_cid(2244, details=False)

    assert compound.cid == 2244
    sent = fake_services.requests_to(PROPS)
    assert [a.method for a in sent] == ["POST"] * 4  # 3 busy answers, then the recorded one
    assert all(a.body == "cid=2244" for a in sent)
    waits = gaps(sent)
    # policy: factor·2^(n-1) + jitter → 0.2, 0.4, 0.8 s (lower bounds strict, upper bounds generous)
    for got, planned in zip(waits, [0.2, 0.4, 0.8]):
        assert planned - 0.02 <= got <= planned + 0.02 + 1.0
    assert waits[0] < waits[1] < waits[2]
    retries = [m for m in progress.messages() if "retrying" in m]
    assert len(retries) == 3
    assert all("PubChem busy (HTTP 503)" in m for m in retries)
    assert "retry 1 of 3" in retries[0] and "retry 3 of 3" in retries[2]


def test_busy_html_with_retry_after_is_honoured(fake_services, progress):
    inject(fake_services.server, PROPERTY_URI, [busy_html(retry_after=1)])

    assert PubChemClient().by_cid(5564, details=False).formula == "C12H7Cl3O2"

    sent = fake_services.requests_to(PROPS)
    assert len(sent) == 2
    assert gaps(sent)[0] >= 0.95  # Retry-After: 1 beats the 0.05 s backoff
    assert any("retrying in 1.0 s" in m for m in progress.messages())


def test_retry_after_longer_than_the_cap_stops_with_throttled(fake_services):
    inject(fake_services.server, PROPERTY_URI, [busy_json(retry_after=120)])

    with pytest.raises(Throttled) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert caught.value.retry_after == pytest.approx(120, abs=1)
    assert "120 s" in str(caught.value) and "try again after" in str(caught.value)
    assert fake_services.count(PROPS) == 1  # nothing more was sent


def test_429_is_retried(fake_services, progress):
    inject(fake_services.server, PROPERTY_URI, [too_many_requests()])

    assert PubChemClient().by_cid(2244, details=False).cid == 2244

    assert fake_services.count(PROPS) == 2
    assert any("HTTP 429" in m for m in progress.messages())


def test_exhausted_retries_on_html_503_give_a_clear_error(fake_services):
    inject(fake_services.server, PROPERTY_URI, [busy_html(), busy_html(), busy_html()])

    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)

    error = caught.value
    assert error.status == 503 and error.retried == 2 and error.service == "PubChem"
    text = str(error)
    assert text.startswith("PubChem: CID 2244 failed: HTTP 503")
    assert "503 Service Unavailable" in text  # the HTML page's title, not its markup
    assert "<html" not in text.lower()
    assert text.endswith("(after 2 retries)")
    assert fake_services.count(PROPS) == 3


def test_exhausted_retries_on_server_busy_json_name_the_fault(fake_services):
    inject(fake_services.server, PROPERTY_URI, [busy_json(), busy_json(), busy_json()])

    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert "PUGREST.ServerBusy" in str(caught.value) and "too busy" in str(caught.value)
    assert caught.value.retried == 2


def test_a_stalled_read_times_out_and_is_retried(fake_services, http_env):
    http_env(read_timeout=0.3)
    inject(fake_services.server, PROPERTY_URI, [stalled(1.5), stalled(1.5), stalled(1.5)])

    with pytest.raises(ServiceError) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert "no answer within the 0.3 s read timeout" in str(caught.value)
    assert caught.value.retried == 2
    assert fake_services.count(PROPS) == 3


def test_a_reset_connection_is_retried_then_reported(fake_services, monkeypatch):
    with resetting_server() as server:
        monkeypatch.setenv("BIOMEDGPT_PUBCHEM_URL", server.base_url)
        reset_settings()
        reset_services()
        with pytest.raises(ServiceError) as caught:
            PubChemClient().by_cid(2244, details=False)
        arrivals = list(server.arrivals)

    assert len(arrivals) == 3
    assert "connection" in str(caught.value) and "PubChem" in str(caught.value)
    assert caught.value.retried == 2


def test_malformed_json_is_an_error_and_never_cached(fake_services):
    inject(fake_services.server, PROPERTY_URI, [malformed_json()])
    client = PubChemClient()

    with pytest.raises(ServiceError) as caught:
        client.by_cid(2244, details=False)
    assert "not valid JSON" in str(caught.value)

    assert client.by_cid(2244, details=False).cid == 2244  # asked again, not replayed from the cache
    assert fake_services.count(PROPS) == 2


# -- PubChem throttling header -----------------------------------------------------------------------


def test_parse_throttling_header():
    header = "Request Count status: Green (0%), Request Time status: Yellow (55%), Service status: Green (20%)"
    assert parse_throttling(header) == [("Request Count", "Green", 0), ("Request Time", "Yellow", 55),
                                        ("Service", "Green", 20)]


@pytest.mark.parametrize("colour, allowed", [("Yellow", 2), ("Red", 1)])
def test_yellow_and_red_slow_the_client_down(fake_services, http_env, progress, colour, allowed):
    http_env(pubchem_cache_ttl=0)  # every look-up goes to the server
    header = throttling_header(colour, 75)
    inject(fake_services.server, PROPERTY_URI,
           [pubchem_response({"PropertyTable": {"Properties": [{"CID": 2244, "MolecularWeight": "180.16"}]}},
                             throttling=header)] * 4)
    client = PubChemClient()

    for _ in range(4 if colour == "Yellow" else 3):
        assert client.by_cid(2244, details=False).molecular_weight == 180.16

    times = [a.t for a in fake_services.requests_to(PROPS)]
    assert max_in_window(times, 1.0) <= allowed  # 5/s normally; halved at Yellow, a fifth at Red
    assert any(f"status {colour}" in m and "slow down" in m for m in progress.messages())


@pytest.mark.parametrize("status", [200, 503])
def test_black_blocks_with_a_clear_error_and_sends_nothing_more(fake_services, status):
    black = throttling_header("Black", 100)
    body = {"PropertyTable": {"Properties": [{"CID": 2244}]}}
    response = busy_json(status=503, throttling=black) if status == 503 else pubchem_response(body, throttling=black)
    response.headers["Retry-After"] = "30"
    inject(fake_services.server, PROPERTY_URI, [response])
    client = PubChemClient()

    with pytest.raises(Throttled) as caught:
        client.by_cid(2244, details=False)
    message = str(caught.value)
    assert "blocked" in message and "Black" in message and "retry in 30 s" in message
    assert caught.value.retry_after == pytest.approx(30, abs=1)

    with pytest.raises(Throttled):
        client.by_cid(5564, details=False)  # still blocked: refused locally
    assert fake_services.count(PROPS) == 1


# -- rate limits --------------------------------------------------------------------------------------


def test_twenty_lookups_on_four_threads_respect_five_per_second(fake_services, http_env):
    http_env(pubchem_cache_ttl=0)
    client = PubChemClient()
    cids = [2244, 5564, 2519, 5950] * 5

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda cid: client.by_cid(cid, details=False), cids))

    assert [c.cid for c in found] == cids
    times = [a.t for a in fake_services.requests_to(PROPS)]
    assert len(times) == 20
    assert max_in_window(times, 1.0) <= 5


def test_shared_rate_limiter_windows_with_small_limits(tmp_path):
    import time

    limiter = SharedRateLimiter(tmp_path / "rate.sqlite", "test", [(3, 0.5), (5, 60.0)])
    stamps = []
    started = time.monotonic()
    for _ in range(5):
        limiter.acquire()
        stamps.append(time.monotonic() - started)

    assert max_in_window(stamps, 0.5) <= 3  # the short window: 3 per 0.5 s
    assert stamps[3] >= 0.45  # the fourth waited for it
    with pytest.raises(NoSlot) as caught:  # the long window (5 per minute) is used up
        limiter.acquire(deadline=time.monotonic() + 1.0)
    assert caught.value.limit == 5 and 55 < caught.value.wait <= 61

    assert limiter.limits(0.5) == [(1, 0.5), (2, 60.0)]  # Yellow: weight 2
    assert limiter.limits(0.2) == [(1, 0.5), (1, 60.0)]  # Red: weight capped at the smallest limit
    other = SharedRateLimiter(tmp_path / "rate.sqlite", "test", [(3, 0.5), (5, 60.0)])  # another process, same file
    with pytest.raises(NoSlot):
        other.acquire(deadline=time.monotonic() + 0.5)
    assert SharedRateLimiter(tmp_path / "r2.sqlite", "t", [(5, 1.0), (3, 60.0)]).windows == [(3, 60.0)]
    with pytest.raises(ValueError):
        SharedRateLimiter(tmp_path / "r3.sqlite", "t", [(0, 1.0)])


# -- cache and offline mode ------------------------------------------------------------------------------


def test_a_cache_hit_sends_no_request_and_the_post_body_is_part_of_the_key(fake_services):
    client = PubChemClient()
    client.by_cid(2244, details=False)
    client.by_cid(5564, details=False)  # same URL, different POST body → a separate entry
    assert fake_services.count(PROPS) == 2

    again = PubChemClient().by_cid(2244, details=False)

    assert again.cid == 2244
    assert fake_services.count(PROPS) == 2


def test_offline_mode_answers_from_the_cache_and_names_the_missing_url(fake_services, monkeypatch, progress):
    PubChemClient().by_cid(2244, details=False)
    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    reset_settings()
    reset_services()
    fake_services.server.clear()  # nothing is served any more
    before = fake_services.count()

    assert PubChemClient().by_cid(2244, details=False).inchikey == "BSYNRYMUTXBXSQ-UHFFFAOYSA-N"
    detailed = PubChemClient().compound("2244")  # synonyms/descriptions were never fetched: reported, not fatal
    assert detailed.cid == 2244 and detailed.synonyms == []
    assert any("no synonyms" in m for m in progress.messages())

    with pytest.raises(OfflineMiss) as caught:
        PubChemClient().by_name("caffeine", details=False)
    assert f"{fake_services.pubchem_url}/rest/pug/compound/name/caffeine/cids/JSON" in str(caught.value)
    assert "BIOMEDGPT_OFFLINE=1" in str(caught.value)
    assert fake_services.count() == before


def test_a_corrupt_cache_file_is_a_store_error_naming_the_file(fake_services, monkeypatch, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "http_cache.sqlite").write_bytes(b"this is not an SQLite database" * 100)
    monkeypatch.setenv("BIOMEDGPT_HOME", str(home))
    reset_settings()
    reset_services()

    with pytest.raises(StoreError) as caught:
        PubChemClient().by_cid(2244, details=False)

    assert str(home / "http_cache.sqlite") in str(caught.value)
    assert "delete it" in str(caught.value)
