"""Cancelling a running question: the stop event reaches worker threads, waits end early, generation stops
between tokens, an HTTP backoff ends at once, and Ctrl-C in the caller becomes ``Cancelled`` within the grace."""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from biomedgpt.core.cancel import (
    Cancelled,
    cancel_scope,
    check_cancelled,
    iterate_interruptible,
    run_interruptible,
    sleep,
)


def _interrupt_after(seconds: float) -> threading.Timer:
    """Ctrl-C as the terminal delivers it: KeyboardInterrupt in the main thread."""
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_sleep_and_check_follow_the_scope_into_threads():
    sleep(0)  # outside a scope: a plain sleep
    check_cancelled()
    with cancel_scope() as event:
        seen = {}

        def worker():
            start = time.monotonic()
            try:
                sleep(30)
            except Cancelled:
                seen["after"] = time.monotonic() - start

        import contextvars

        thread = threading.Thread(target=contextvars.copy_context().run, args=(worker,))
        thread.start()
        time.sleep(0.2)
        event.set()
        thread.join(5)
        assert seen["after"] < 2
        with pytest.raises(Cancelled):
            check_cancelled()
    check_cancelled()  # the scope is gone


def test_run_interruptible_turns_ctrl_c_into_cancelled_within_the_grace():
    stopped = threading.Event()

    def slow():
        try:
            sleep(60)  # a wait that watches the stop event
        finally:
            stopped.set()

    timer = _interrupt_after(0.3)
    start = time.monotonic()
    with pytest.raises(Cancelled):
        run_interruptible(slow, grace=1.5)
    timer.cancel()
    assert time.monotonic() - start < 2.5
    assert stopped.wait(2)
    assert run_interruptible(lambda x: x * 2, 21) == 42


def test_iterate_interruptible_stops_a_worker_blocked_where_no_check_reaches():
    def items():
        yield 1
        time.sleep(30)  # e.g. a socket read: the caller must not wait for it
        yield 2

    timer = _interrupt_after(0.4)
    got = []
    start = time.monotonic()
    with pytest.raises(Cancelled):
        for item in iterate_interruptible(items, grace=0.5):
            got.append(item)
    timer.cancel()
    assert got == [1] and time.monotonic() - start < 2
    assert list(iterate_interruptible(lambda: iter(range(3)))) == [0, 1, 2]
    with pytest.raises(ValueError, match="boom"):
        list(iterate_interruptible(lambda: (_ for _ in ()).throw(ValueError("boom"))))


def test_generation_stops_between_tokens():
    from biomedgpt.model import load_model

    tiny_model = load_model("tiny")
    with cancel_scope() as event:
        threading.Timer(0.3, event.set).start()
        start = time.monotonic()
        with pytest.raises(Cancelled):
            tiny_model.generate_ids("Describe this molecule.", max_new_tokens=100_000, min_new_tokens=100_000)
        assert time.monotonic() - start < 2


def test_http_backoff_ends_when_the_question_is_cancelled(httpserver, tmp_path):
    from biomedgpt.core.settings import Settings, use_settings
    from biomedgpt.tools.pubchem import PubChemClient

    httpserver.expect_request("/rest/pug/compound/cid/2244/property/Title/JSON").respond_with_data(
        "busy", status=503, headers={"Retry-After": "20"})
    settings = Settings(home=tmp_path, pubchem_url=httpserver.url_for("").rstrip("/"))
    with use_settings(settings), cancel_scope() as event:
        threading.Timer(0.5, event.set).start()
        start = time.monotonic()
        with pytest.raises(Cancelled):
            PubChemClient().http.get_json(httpserver.url_for("/rest/pug/compound/cid/2244/property/Title/JSON"))
        assert time.monotonic() - start < 2.5  # not the 20 s the server asked for
