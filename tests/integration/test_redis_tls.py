"""Redis over TLS (issue 23: "password/TLS where given"): Debian's redis-server (built with TLS)
listening on a TLS port only, with a certificate made here by openssl for 127.0.0.1; the
engine's store layer connects with a `rediss://` url, and through a TLS-only Sentinel with
`redis.tls = true`, checking the server's certificate against `redis.tls_ca_file`. A CA that
did not sign the certificate is refused: the store reports Redis unavailable."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import pytest_twisted

from ccengine.config import ConfigError, parse_config
from ccengine.store.base import RedisConnection, StoreUnavailable
from ccengine.store.embedded import free_port
from ccengine.waiting.callbacks import CallbackStore
from asterisk_lab import wait_for

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None
                                or shutil.which("redis-sentinel") is None,
                                reason="openssl and Debian redis-sentinel needed")


def make_ca(tmp: Path, name: str) -> tuple[Path, Path]:
    key, cert = tmp / f"{name}.key", tmp / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


def make_server_cert(tmp: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = tmp / "server.key", tmp / "server.csr", tmp / "server.crt"
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    ext = tmp / "san.ext"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[1]), "-CAkey",
                    str(ca[0]), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                    "-out", str(cert)], check=True, capture_output=True)
    return key, cert


def tls_args(server: tuple[Path, Path], ca: Path) -> list[str]:
    return ["--tls-cert-file", str(server[1]), "--tls-key-file", str(server[0]),
            "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]


def answers_tls(port: int, ca: Path) -> bool:
    import redis
    try:
        return redis.Redis(host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(ca),
                           socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def tls_lab(tmp_path):
    """A TLS-only redis-server and a TLS-only sentinel monitoring it."""
    ca = make_ca(tmp_path, "ca")
    server = make_server_cert(tmp_path, ca)
    port, sentinel_port = free_port(), free_port()
    procs = [subprocess.Popen(["redis-server", "--port", "0", "--tls-port", str(port),
                               "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "",
                               *tls_args(server, ca[1])],
                              stdout=(tmp_path / "redis.log").open("w"), stderr=subprocess.STDOUT)]
    try:
        wait_for(lambda: answers_tls(port, ca[1]), 10, "redis over TLS")
        conf = tmp_path / "sentinel.conf"
        conf.write_text(f"port 0\ntls-port {sentinel_port}\nbind 127.0.0.1\n"
                        f"tls-cert-file {server[1]}\ntls-key-file {server[0]}\n"
                        f"tls-ca-cert-file {ca[1]}\ntls-auth-clients no\ntls-replication yes\n"
                        f"sentinel monitor tlsmaster 127.0.0.1 {port} 1\n")
        procs.append(subprocess.Popen(["redis-sentinel", str(conf)],
                                      stdout=(tmp_path / "sentinel.log").open("w"),
                                      stderr=subprocess.STDOUT))
        wait_for(lambda: answers_tls(sentinel_port, ca[1]), 10, "sentinel over TLS")
        yield {"port": port, "sentinel": sentinel_port, "ca": ca[1],
               "other_ca": make_ca(tmp_path, "other")[1]}
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(5)


async def one_callback(redis_section: dict, number: str) -> None:
    conn = RedisConnection.from_config(parse_config({"redis": redis_section}).redis,
                                       redis_section.get("url", ""))
    try:
        await CallbackStore(conn, ["inbound"], 48).request(number, "inbound", "zh",
                                                           f"tls-{number}", 0, 1.0, 2.0)
        assert await conn.call(lambda r: r.exists(f"cc:callback:open:{number}")) == 1
    finally:
        await conn.close()


@pytest_twisted.ensureDeferred
async def test_a_rediss_url_with_the_servers_ca_works_and_another_ca_is_refused(tls_lab):
    url = f"rediss://127.0.0.1:{tls_lab['port']}"
    await one_callback({"url": url, "tls_ca_file": str(tls_lab["ca"]), "timeout": 2.0},
                       "13800000101")
    with pytest.raises(StoreUnavailable):
        await one_callback({"url": url, "tls_ca_file": str(tls_lab["other_ca"]),
                            "timeout": 2.0}, "13800000102")


@pytest_twisted.ensureDeferred
async def test_sentinels_over_tls_lead_to_the_master_over_tls(tls_lab):
    section = {"sentinels": [f"127.0.0.1:{tls_lab['sentinel']}"], "service": "tlsmaster",
               "tls": True, "tls_ca_file": str(tls_lab["ca"]), "timeout": 2.0}
    await one_callback(section, "13800000103")
    with pytest.raises(StoreUnavailable):
        await one_callback({**section, "tls": False, "tls_ca_file": ""}, "13800000104")


def test_tls_settings_are_checked(tmp_path):
    for section, says in (({"url": "redis://127.0.0.1:6379", "tls": True}, "tls"),
                          ({"url": "redis://127.0.0.1:6379",
                            "tls_ca_file": "/etc/hostname"}, "tls_ca_file"),
                          ({"url": "rediss://127.0.0.1:6379",
                            "tls_ca_file": str(tmp_path / "none.crt")}, "no such file")):
        with pytest.raises(ConfigError, match=says):
            parse_config({"redis": section})
