"""
``with emulator:`` is re-entrant: an inner block (a helper that wraps its own work in ``with emulator:``)
does not stop the emulator the outer block started; the outermost exit does.
"""

from __future__ import annotations

import urllib.request

from airflow_provider_sestek.testing import SestekEmulator


def _health(url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url + "/_emulator/health", timeout=5) as response:
        return int(response.status)


def test_inner_with_keeps_the_emulator_running() -> None:
    with SestekEmulator() as outer:
        url = outer.url
        with outer as inner:
            assert inner is outer and _health(url) == 200
        assert outer.running, "the inner block stopped the emulator of the outer one"
        assert _health(url) == 200
    assert not outer.running


def test_a_failed_start_leaves_no_depth_behind(tmp_path: object) -> None:
    emulator = SestekEmulator(certfile="/no/such/cert.pem", keyfile="/no/such/key.pem")
    try:
        with emulator:
            raise AssertionError("the start must fail")
    except OSError:
        pass
    assert not emulator.running
    plain = SestekEmulator()
    with plain:
        assert plain.running
    assert not plain.running
