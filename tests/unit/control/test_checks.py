"""``run_checks``: every check at once, each bounded by its own deadline, each line reported as it
is known, the result in the checks' order."""

from __future__ import annotations

import threading
import time

from kapsule.control.checks import Check, Finding, fail, ok, run_checks


def test_a_check_past_its_deadline_names_its_target_and_the_rest_still_report() -> None:
    release = threading.Event()

    def hang() -> list[Finding]:
        release.wait(30)
        return [ok("never seen")]

    def boom() -> list[Finding]:
        raise RuntimeError("the library surprised us")

    seen: list[tuple[float, str]] = []
    started = time.monotonic()
    checks = [
        Check("slow store", "Cloud Storage at http://10.0.0.1:9", hang, deadline_s=0.5),
        Check("quick", "the settings", lambda: [ok("quick")]),
        Check("broken", "nothing", boom),
        Check("two lines", "the table", lambda: [ok("first"), fail("second", "bad", "fix it")]),
    ]
    try:
        findings = run_checks(checks, on_finding=lambda f: seen.append((time.monotonic() - started, f.check)))
    finally:
        release.set()
    took = time.monotonic() - started

    assert took < 3, took  # the deadline, not the hung call, bounds it
    assert [f.check for f in findings] == ["slow store", "quick", "broken", "first", "second"]
    slow = findings[0]
    assert not slow.ok and "no answer from Cloud Storage at http://10.0.0.1:9 within 0.5 s" in slow.problem
    assert "RuntimeError: the library surprised us" in findings[2].problem and not findings[2].ok
    assert seen[-1][1] == "slow store" and seen[-1][0] >= 0.5  # reported last, when its deadline passed
    assert all(at < 0.5 for at, check in seen if check != "slow store")  # the others as they finished
    assert str(slow).startswith("FAIL  slow store: no answer")
