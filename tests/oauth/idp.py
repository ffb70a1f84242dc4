"""A stand-in identity provider on loopback: a JWKS document and a token endpoint that signs RS256 JWTs
with a key generated at start (what an external IdP of XROUTER_JWT_ISSUERS looks like to XRouter)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

AUDIENCE = "xrouter-gateway"


def new_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class IdentityProvider:
    def __init__(self):
        self.key, self.kid = new_key(), "idp-key-1"
        self.jwks_fetches = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "IdentityProvider":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def config(self, **overrides) -> dict:
        return {"issuer": self.issuer, "jwks_url": self.issuer + "/jwks.json", "audience": AUDIENCE,
                "organisation_claim": "xr_org", "role_claim": "xr_role", **overrides}

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": "RS256"}]}

    def token(self, sub: str, organisation: str, role: str = "developer", *, key=None, lifetime: int = 300,
              **claims) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + lifetime,
                   "xr_org": organisation, "xr_role": role, **claims}
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": self.kid})

    def _handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/jwks.json":
                    idp.jwks_fetches += 1
                    return self._send(200, idp.jwks())
                return self._send(404, {"error": "not_found"})

            def do_POST(self):  # a password-less token endpoint: fine for a stand-in on loopback
                if self.path != "/token":
                    return self._send(404, {"error": "not_found"})
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["content-length"])).decode()).items()}
                token = idp.token(form["sub"], form["organisation"], form.get("role", "developer"))
                return self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        return Handler
