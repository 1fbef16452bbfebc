"""A registry token service (the Docker token-auth flow) for the test bed.

docker-registry is configured with ``auth: token`` pointing here.  The
service checks HTTP basic credentials against one user and answers
``{"token", "access_token", "expires_in", "issued_at"}`` with an RS256 JWT
whose ``x5c`` header carries the signing certificate, which the registry
trusts through its ``rootcertbundle``.  Anonymous requests get a token
without access, as real token services do.

Test-only controls on the same port (loopback only):
``POST /control/ttl?seconds=N`` sets the lifetime of new tokens;
``GET /control/stats`` returns how many tokens were issued.

Usage: python -m lxcri_testbed.token_server PORT KEY CERT ISSUER SERVICE USER PASSWORD
"""

import base64
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenService:
    def __init__(self, key_path, cert_path, issuer, service, user, password):
        with open(key_path, "rb") as handle:
            self.key = serialization.load_pem_private_key(handle.read(), password=None)
        with open(cert_path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        self.x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        self.issuer = issuer
        self.service = service
        self.user = user
        self.password = password
        self.ttl = 300
        self.issued = 0
        self.lock = threading.Lock()

    def sign(self, claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing_input = "%s.%s" % (b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode()))
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return "%s.%s" % (signing_input, b64url(signature))

    def token(self, subject, scopes, service):
        now = int(time.time())
        access = []
        if subject:
            for scope in scopes:
                parts = scope.split(":")
                if len(parts) == 3 and parts[0] == "repository":
                    access.append({"type": "repository", "name": parts[1], "actions": parts[2].split(",")})
        claims = {"iss": self.issuer, "sub": subject or "", "aud": service, "exp": now + self.ttl,
                  "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        with self.lock:
            self.issued += 1
        return {"token": self.sign(claims), "access_token": self.sign(claims), "expires_in": self.ttl,
                "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}


def make_handler(service):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):  # quiet
            pass

        def _json(self, status, body, headers=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            url = urlparse(self.path)
            query = parse_qs(url.query)
            if url.path == "/control/stats":
                return self._json(200, {"issued": service.issued, "ttl": service.ttl})
            if url.path != "/token":
                return self._json(404, {"error": "not found"})
            subject = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                user, dummy, password = base64.b64decode(auth[6:]).decode().partition(":")
                if (user, password) != (service.user, service.password):
                    return self._json(401, {"details": "incorrect username or password"},
                                      {"WWW-Authenticate": 'Basic realm="lxcri-testbed-token"'})
                subject = user
            scopes = []
            for value in query.get("scope", []):
                scopes.extend(value.split(" "))
            return self._json(200, service.token(subject, scopes, query.get("service", [service.service])[0]))

        def do_POST(self):  # noqa: N802
            url = urlparse(self.path)
            if url.path == "/control/ttl":
                service.ttl = int(parse_qs(url.query)["seconds"][0])
                return self._json(200, {"ttl": service.ttl})
            return self._json(404, {"error": "not found"})

    return Handler


def main(argv):
    port, key, cert, issuer, svc, user, password = argv
    service = TokenService(key, cert, issuer, svc, user, password)
    server = ThreadingHTTPServer(("127.0.0.1", int(port)), make_handler(service))
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
