"""Shared by the Python examples: reads what `hearth demo` wrote (demo.json: URLs, the CA, tokens)
and calls the demo's clusters over HTTPS, trusting the demo's CA. Standard library only."""

import json
import os
import ssl
import sys
import urllib.error
import urllib.request

_path = os.environ.get("HEARTH_DEMO")
if not _path:
    sys.exit("set HEARTH_DEMO to the demo.json that `cargo run -- demo` printed")
with open(_path) as f:
    DEMO = json.load(f)
CA = DEMO["ca_cert"]
_CTX = ssl.create_default_context(cafile=CA)


def cluster(cid):
    """What the demo knows of cluster `cid`: url, root_token, demo_token, passwords, …"""
    return DEMO["clusters"][cid]


def call(cid, method, path, token=None, body=None, headers=None):
    """One request to cluster `cid`; returns (status, JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(cluster(cid)["url"] + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=_CTX) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def ok(cid, method, path, token=None, body=None, headers=None):
    """Like `call`, but stops the example with the error unless the answer is a success."""
    status, answer = call(cid, method, path, token, body, headers)
    if status >= 300:
        sys.exit(f"{method} {path} at {cid} answered {status}: {answer}")
    return answer


def expect(status_wanted, cid, method, path, token=None, body=None, headers=None):
    """A request that must answer `status_wanted` (a refusal the example shows)."""
    status, answer = call(cid, method, path, token, body, headers)
    if status != status_wanted:
        sys.exit(f"{method} {path} at {cid}: wanted {status_wanted}, got {status}: {answer}")
    return answer


def full_token(created):
    """The `v2/<uuid>/<secret>` form of a token that api_client_authorizations.create answered
    (Arvados answers the secret alone; clients build the full form)."""
    t = created["api_token"]
    return t if t.startswith("v2/") else f"v2/{created['uuid']}/{t}"


def new_user(cid, username, email=None, verified=True, password=None):
    """A user made with the cluster's root token, logged in; returns (user, token)."""
    root = cluster(cid)["root_token"]
    password = password or f"pw-{username}-example"
    attrs = {"username": username, "email": email or f"{username}@example.org", "email_verified": verified,
             "first_name": username.capitalize()}
    user = ok(cid, "POST", "/arvados/v1/users", root, {"user": attrs})
    ok(cid, "POST", f"/hearth/v1/users/{user['uuid']}/password", root, {"password": password})
    login = ok(cid, "POST", "/hearth/v1/login", None, {"login": username, "password": password})
    return user, login["api_token"]


def say(*args):
    print(*args, flush=True)
