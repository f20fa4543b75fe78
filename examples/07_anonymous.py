"""07 — Anonymous work imported at login.

A script that is not logged in starts an anonymous session, makes two collections with its
token (the collections API is all that token may use), then logs in naming the session: the
login offers the two collections, and the import moves them into the account and ends the
session. The proof is the anonymous secret itself, never an id. Run:

    HEARTH_DEMO=…/demo.json python3 examples/07_anonymous.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _demo import expect, new_user, ok, say  # noqa: E402

anon = ok("bbbbb", "POST", "/hearth/v1/anonymous")
t = anon["anonymous_token"]
say("anonymous session, expires", anon["expires_at"])
for name in ["draft map", "draft notes"]:
    ok("bbbbb", "POST", "/arvados/v1/collections", t, {"collection": {"name": name}})
expect(401, "bbbbb", "GET", "/arvados/v1/users/current", t)
say("the anonymous token made 2 collections, and may not read users/current")
s = str(int(time.time() * 1000))[-6:]
user, _ = new_user("bbbbb", f"una{s}", password="una-example-pw")
login = ok("bbbbb", "POST", "/hearth/v1/login", None,
           {"login": f"una{s}", "password": "una-example-pw", "anonymous_token": t})
offer = login["anonymous_offer"]
say("offered at login:", [c["name"] for c in offer["collections"]])
moved = ok("bbbbb", "POST", "/hearth/v1/anonymous_imports", login["api_token"], {"anonymous_token": t})
say("imported", moved["moved"], "for", moved["owner_uuid"])
assert moved["owner_uuid"] == user["uuid"] and len(moved["moved"]) == 2
expect(401, "bbbbb", "GET", "/arvados/v1/collections", t)
say("the anonymous session is over")
