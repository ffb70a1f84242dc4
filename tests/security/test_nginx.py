"""Issue 12, hardening: deploy/nginx/xrouter.conf, run by Debian's nginx on loopback in front of a real gateway
with a throwaway certificate: `nginx -t` passes, TLS 1.3 only with HSTS, a normal request passes through, slow
headers are cut, an oversized body gets 413 and a flood 429 (both in the API's error shape)."""

import shutil
import socket
import ssl
import subprocess
import time

import httpx
import pytest

from tests.conftest import ROOT, free_port, need

CONF = ROOT / "deploy" / "nginx" / "xrouter.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HEADER_TIMEOUT = 2  # seconds, instead of the file's 10 s: the same directive, a shorter wait in CI
BURST = 20  # the flood guard's burst, instead of 200 at 100 r/s: a flood this test can make on a slow machine


def throwaway_certificate(directory):
    """A CA and a certificate for 127.0.0.1 signed by it (openssl), as tls.crt/tls.key; returns the CA's path."""
    run = lambda *args: subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=XRouter test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "tls.key", "-out", "tls.csr")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "san.ext", "-out", "tls.crt")
    return directory / "ca.crt"


def site_config(gateway_port: int, http_port: int, https_port: int, tls_dir) -> str:
    """The deployment file with loopback addresses, the test's certificate and a shorter header timeout."""
    text = CONF.read_text()
    replacements = {
        "server gateway:8000;": f"server 127.0.0.1:{gateway_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "/etc/nginx/tls/": f"{tls_dir}/",
        "client_header_timeout 10s;": f"client_header_timeout {HEADER_TIMEOUT}s;",
        "rate=100r/s;": "rate=1r/s;",
        "burst=200 nodelay;": f"burst={BURST} nodelay;",
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx/xrouter.conf no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="module")
def nginx(gateway, tmp_path_factory):
    need("nginx (apt-get install nginx)", shutil.which(NGINX) is not None)
    directory = tmp_path_factory.mktemp("nginx")
    ca = throwaway_certificate(directory)
    http_port, https_port = free_port(), free_port()
    (directory / "xrouter.conf").write_text(
        site_config(int(gateway.base_url.rsplit(":", 1)[1]), http_port, https_port, directory))
    temp = "\n".join(f"    {name}_temp_path {directory}/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (directory / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp}
    include {directory}/xrouter.conf;
}}
""")
    argv = [NGINX, "-c", str(directory / "nginx.conf"), "-p", str(directory), "-e", str(directory / "error.log")]
    checked = subprocess.run([*argv, "-t"], capture_output=True, text=True, timeout=30)
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{https_port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"base": base, "http": f"http://127.0.0.1:{http_port}", "port": https_port, "ca": str(ca),
           "checked": checked, "key": gateway.keys["alice"]}
    process.terminate()
    process.wait(timeout=10)


def test_nginx_accepts_the_configuration(nginx):
    checked = nginx["checked"]
    assert checked.returncode == 0, checked.stderr
    assert "test is successful" in checked.stderr


def test_a_normal_request_passes_through_over_tls_1_3_with_hsts(nginx):
    with httpx.Client(verify=nginx["ca"], timeout=30) as client:
        models = client.get(nginx["base"] + "/v1/models", headers={"authorization": f"Bearer {nginx['key']}"})
        assert models.status_code == 200 and models.json()["data"]
        assert models.headers["strict-transport-security"] == "max-age=31536000"
        assert "server" not in models.headers or "nginx/" not in models.headers["server"]  # no version
        chat = client.post(nginx["base"] + "/v1/chat/completions", headers={"authorization": f"Bearer {nginx['key']}"},
                           json={"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"]
    context = ssl.create_default_context(cafile=nginx["ca"])
    with socket.create_connection(("127.0.0.1", nginx["port"]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.version() == "TLSv1.3"


def test_tls_1_2_is_refused(nginx):
    context = ssl.create_default_context(cafile=nginx["ca"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", nginx["port"]), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_plain_http_is_redirected_to_https(nginx):
    answer = httpx.get(nginx["http"] + "/v1/models", timeout=10)
    assert answer.status_code == 308 and answer.headers["location"].startswith("https://")


def test_slow_headers_are_cut(nginx):
    context = ssl.create_default_context(cafile=nginx["ca"])
    with socket.create_connection(("127.0.0.1", nginx["port"]), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
        started = time.monotonic()
        tls.settimeout(HEADER_TIMEOUT + 5)
        try:
            received = tls.recv(1024)
        except (ConnectionResetError, ssl.SSLError):
            received = b""
        waited = time.monotonic() - started
    assert b"200" not in received  # closed (nginx sends a 408 at most), never served
    assert HEADER_TIMEOUT - 0.5 <= waited < HEADER_TIMEOUT + 3


def test_an_oversized_body_gets_413_in_the_api_shape(nginx):
    body = b'{"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "' + b"x" * (5 * 1024 * 1024) + b'"}]}'
    answer = httpx.post(nginx["base"] + "/v1/chat/completions", content=body, verify=nginx["ca"], timeout=30,
                        headers={"authorization": f"Bearer {nginx['key']}", "content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "request_too_large"


def test_a_flood_from_one_address_gets_429_in_the_api_shape(nginx):
    with httpx.Client(verify=nginx["ca"], timeout=10) as client:
        statuses = [client.get(nginx["base"] + "/healthz") for _ in range(BURST * 2)]
    limited = [answer for answer in statuses if answer.status_code == 429]
    assert statuses[0].status_code == 200
    assert len(limited) >= BURST // 2, "a flood from one address was admitted"
    assert limited[0].json()["error"]["type"] == "rate_limit_error"
