"""The HTTP session every source speaks through: what the environment says of proxies, honoured on every request and
read once per origin."""

import pytest
import requests.sessions

from hubmirror.fetch.http import new_session
from tests.fakes.httpserver import Handler, LoopbackServer


class _Recorder(Handler):
    """Answers every GET, noting its request target (a proxy is asked for the absolute URL, a server for the path)."""

    def do_GET(self):  # noqa: N802 - the base class's naming
        self.owner.append(self.path)
        self.send_json(200, {"ok": True})


@pytest.fixture
def origin_and_proxy():
    seen_by_origin, seen_by_proxy = [], []
    origin, proxy = LoopbackServer(_Recorder, seen_by_origin).start(), LoopbackServer(_Recorder, seen_by_proxy).start()
    try:
        yield origin, seen_by_origin, proxy, seen_by_proxy
    finally:
        origin.stop()
        proxy.stop()


def test_the_environments_proxy_and_no_proxy_hold_for_every_request_and_are_read_once_per_origin(
        origin_and_proxy, monkeypatch):
    origin, seen_by_origin, proxy, seen_by_proxy = origin_and_proxy
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy.url)
    lookups = []
    environ_proxies = requests.sessions.get_environ_proxies
    monkeypatch.setattr(requests.sessions, "get_environ_proxies",
                        lambda url, no_proxy=None: lookups.append(url) or environ_proxies(url, no_proxy=no_proxy))

    session = new_session()
    for _ in range(3):
        assert session.get(f"{origin.url}/model", timeout=10).json() == {"ok": True}
    assert seen_by_proxy == [f"{origin.url}/model"] * 3 and seen_by_origin == []
    assert len(lookups) == 1  # requests alone read the whole environment at each of the three

    monkeypatch.setenv("no_proxy", "127.0.0.1")  # a new command's session: straight to the origin
    session = new_session()
    for _ in range(3):
        session.get(f"{origin.url}/model", timeout=10)
    assert seen_by_origin == ["/model"] * 3 and len(seen_by_proxy) == 3
