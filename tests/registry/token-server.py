#!/usr/bin/env python3
"""token-server.py PORT CERT KEY ISSUER USER PASSWORD LOG — a minimal Docker token service for the
registry's `auth: token`: GET /token?service=S&scope=repository:NAME:ACTIONS with HTTP basic auth
answers {"token": JWT} (RS256, x5c = CERT) granting the asked actions to USER; anonymous callers
get a token with no access; a wrong password gets 401. Each request's scope is appended to LOG."""
import base64, json, sys, time, uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

port, cert_path, key_path, issuer, user, password, log = sys.argv[1:8]
cert = x509.load_pem_x509_certificate(open(cert_path, 'rb').read())
key = serialization.load_pem_private_key(open(key_path, 'rb').read(), None)
x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b'=').decode()

def jwt(claims):
    head = b64url(json.dumps({'typ': 'JWT', 'alg': 'RS256', 'x5c': [x5c]}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = key.sign(f'{head}.{body}'.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f'{head}.{body}.{b64url(sig)}'

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        q = parse_qs(urlparse(self.path).query)
        scope, service = q.get('scope', [''])[0], q.get('service', [''])[0]
        auth = self.headers.get('Authorization', '')
        who = ''
        if auth.startswith('Basic '):
            u, _, p = base64.b64decode(auth[6:]).decode().partition(':')
            if (u, p) != (user, password):
                self.send_response(401); self.end_headers(); return
            who = u
        with open(log, 'a') as f:
            f.write(f'{who or "anonymous"} {scope}\n')
        access = []
        if who and scope.startswith('repository:'):
            _, name, actions = scope.split(':', 2)
            access.append({'type': 'repository', 'name': name, 'actions': actions.split(',')})
        now = int(time.time())
        tok = jwt({'iss': issuer, 'sub': who, 'aud': service, 'exp': now + 300, 'nbf': now - 10,
                   'iat': now, 'jti': str(uuid.uuid4()), 'access': access})
        out = json.dumps({'token': tok, 'expires_in': 300}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

HTTPServer(('127.0.0.1', int(port)), Handler).serve_forever()
