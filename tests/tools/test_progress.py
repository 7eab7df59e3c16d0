"""The progress channel: ``pytest -q tests/tools/test_progress.py``."""

from __future__ import annotations

import contextvars
import threading

from biomedgpt.tools.progress import current_listener, listen, report


def test_listeners_with_and_without_data_and_nesting():
    seen = []
    with listen(lambda message, **data: seen.append(("outer", message, data))):
        report("one", service="pubchem")
        with listen(lambda message: seen.append(("inner", message))):  # a one-argument callback
            report("two", wait=1.0)
        report("three")
    report("nobody listens")  # no listener: logged at debug level only

    assert seen == [("outer", "one", {"service": "pubchem"}), ("inner", "two"), ("outer", "three", {})]


def test_a_failing_listener_does_not_break_the_caller():
    def broken(message, **data):
        raise RuntimeError("display gone")

    with listen(broken):
        report("still fine")  # must not raise


def test_listeners_are_per_context():
    seen = []
    other_thread_listener = []
    with listen(lambda message, **data: seen.append(message)):
        context = contextvars.copy_context()
        thread = threading.Thread(target=lambda: other_thread_listener.append(current_listener()))
        thread.start()
        thread.join()
        context.run(report, "via copied context")

    assert other_thread_listener == [None]  # a plain new thread starts without one
    assert seen == ["via copied context"]
