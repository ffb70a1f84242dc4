"""A loopback HTTP(S) server that records what is POSTed to it: the stand-in for webhook receivers,
Sentry, OTLP collectors and the like in tests."""

import gzip
import http.server
import ssl
import threading


class Receiver:
    """Records each POST as (headers, body) in `requests` (a gzip body is unpacked) and its path in `paths`;
    answers `statuses` in turn (the last one repeats) with `reply` as the body. `tls`: a trustme CA."""

    def __init__(self, statuses=(200,), tls=None, path: str = "/", reply: bytes = b"ok",
                 content_type: str = "text/plain"):
        self.statuses, self.requests, self.paths = list(statuses), [], []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.requests.append((dict(self.headers), body))
                receiver.paths.append(self.path)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        scheme = "http"
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.issue_cert("127.0.0.1").configure_cert(context)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            scheme = "https"
        self.base = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.url = self.base + path
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
