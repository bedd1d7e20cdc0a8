"""issue 19 point 5: the HTTP server cannot take FastAGI's file descriptors or CPU. A real
engine process with http.max_connections = 20 and http.header_timeout = 2."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

from prometheus_client import CollectorRegistry, Counter
from twisted.internet.task import Clock

from ccengine.store.embedded import free_port
from ccengine.web import MetricsResource


def test_slow_header_clients_are_capped_and_closed_and_fastagi_still_accepts(tmp_path, redis_url):
    agi, http = free_port(), free_port()
    config = tmp_path / "c.toml"
    config.write_text(f'[redis]\nurl = "{redis_url}"\n[ami]\nenabled = false\n'
                      f'[fastagi]\nport = {agi}\n[http]\nport = {http}\nmax_connections = 20\n'
                      'header_timeout = 2.0\n', encoding="utf-8")
    engine = subprocess.Popen([sys.executable, "-m", "ccengine.cli", "run", "--config",
                               str(config)], cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    slow: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and engine.poll() is None
                time.sleep(0.2)
        for _ in range(60):
            s = socket.create_connection(("127.0.0.1", http), timeout=5)
            s.sendall(b"G")                          # a request line that never ends
            slow.append(s)
        time.sleep(0.5)
        open_now = sum(1 for s in slow if not closed(s))
        assert open_now <= 20                       # the rest were refused at once
        agi_conn = socket.create_connection(("127.0.0.1", agi), timeout=2)   # callers unaffected
        agi_conn.close()
        time.sleep(2.5)                              # past header_timeout, bytes or not
        for s in slow:
            try:
                s.sendall(b"E")
            except OSError:
                pass
        time.sleep(0.3)
        assert all(closed(s) for s in slow)
        s = socket.create_connection(("127.0.0.1", http), timeout=5)   # room again
        s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.")
        s.close()
    finally:
        for s in slow:
            s.close()
        engine.terminate()
        engine.wait(20)


def closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def test_metrics_are_rendered_at_most_once_per_interval():
    registry = CollectorRegistry()
    calls = Counter("demo_total", "demo", registry=registry)
    clock = Clock()
    resource = MetricsResource(registry, 1.0, clock)

    class Request:
        def setHeader(self, *a):
            pass
    first = resource.render_GET(Request())
    calls.inc()
    assert resource.render_GET(Request()) == first           # within the second: cached
    clock.advance(1.0)
    assert resource.render_GET(Request()) != first           # then rendered again


def test_metrics_text_is_formatted_off_the_reactor_and_shared_by_waiting_requests():
    """Collected on the reactor, formatted by `in_thread` (the engine's thread pool); requests
    arriving while it runs get the same text."""
    from twisted.internet.defer import Deferred
    from twisted.web.test.requesthelper import DummyRequest
    registry = CollectorRegistry()
    Counter("demo2_total", "demo", registry=registry).inc()
    clock = Clock()
    jobs = []

    def in_thread(func, *args):
        d = Deferred()
        jobs.append((d, func, args))
        return d
    resource = MetricsResource(registry, 1.0, clock, in_thread)
    first, second = DummyRequest([b""]), DummyRequest([b""])
    from twisted.web.server import NOT_DONE_YET
    assert resource.render_GET(first) is NOT_DONE_YET
    assert resource.render_GET(second) is NOT_DONE_YET
    assert len(jobs) == 1                                    # one rendering for both
    d, func, args = jobs[0]
    d.callback(func(*args))
    assert first.finished and second.finished
    assert b"demo2_total 1.0" in b"".join(first.written)
    assert b"".join(first.written) == b"".join(second.written)
