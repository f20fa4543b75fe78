"""02 — A token from home used at a peer, and revoked at home.

The demo user logs in at aaaaa (its home). bbbbb accepts aaaaa's token: it asks aaaaa once
(a signed validation request), caches the signed answer, and answers as the home's user.
The token salted for bbbbb (HMAC-SHA1 of the secret, keyed by it, over "bbbbb") works at
bbbbb and is useless anywhere else. Revoked at aaaaa, the token stops working at bbbbb within
seconds (a signed token_revoked notice). Run:

    HEARTH_DEMO=…/demo.json python3 examples/02_remote_token.py
"""

import hashlib
import hmac
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _demo import call, cluster, expect, ok, say  # noqa: E402

a = cluster("aaaaa")
login = ok("aaaaa", "POST", "/hearth/v1/login", None, {"login": "demo", "password": a["demo_password"]})
token = login["api_token"]
me_home = ok("aaaaa", "GET", "/arvados/v1/users/current", token)
me_peer = ok("bbbbb", "GET", "/arvados/v1/users/current", token)
say("at aaaaa:", me_home["uuid"], "  at bbbbb:", me_peer["uuid"], "(validated at aaaaa, then cached)")
assert me_peer["uuid"] == me_home["uuid"]

_, uuid, secret = token.split("/")
salted = f"v2/{uuid}/" + hmac.new(secret.encode(), b"bbbbb", hashlib.sha1).hexdigest()
ok("bbbbb", "GET", "/arvados/v1/users/current", salted)
expect(401, "ccccc", "GET", "/arvados/v1/users/current", salted)
say("salted for bbbbb: works at bbbbb, refused at ccccc")

ok("aaaaa", "DELETE", f"/arvados/v1/api_client_authorizations/{uuid}", token)
deadline = time.time() + 30
while time.time() < deadline:
    status, _ = call("bbbbb", "GET", "/arvados/v1/users/current", token)
    if status == 401:
        break
    time.sleep(0.2)
else:
    sys.exit("bbbbb still accepts the revoked token")
say("revoked at aaaaa: bbbbb refuses it now")
