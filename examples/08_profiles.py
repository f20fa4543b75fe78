"""08 — Acting as a managed profile.

A parent creates a profile (no email, no password, no token of its own), then acts as it with
the parent's own token plus the `X-Hearth-Act-As` header: users.current answers the profile, a
new collection is the profile's, and the audit log names the parent as `acting_parent_uuid`.
Run:  HEARTH_DEMO=…/demo.json python3 examples/08_profiles.py
"""

import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from _demo import cluster, new_user, ok, say  # noqa: E402

s = str(int(time.time() * 1000))[-6:]
parent, token = new_user("aaaaa", f"ann{s}")
kit = ok("aaaaa", "POST", "/hearth/v1/profiles", token, {"first_name": "Kit", "last_name": "Lee"})
say("profile", kit["uuid"], "managed by", kit["managed_by"])
act = {"X-Hearth-Act-As": kit["uuid"]}
me = ok("aaaaa", "GET", "/arvados/v1/users/current", token, headers=act)
say("acting as:", me["uuid"])
coll = ok("aaaaa", "POST", "/arvados/v1/collections", token, {"collection": {"name": "Kit's drawings"}}, headers=act)
assert coll["owner_uuid"] == kit["uuid"], coll
say("collection", coll["uuid"], "owned by the profile")
q = urllib.parse.quote(json.dumps([["acting_parent_uuid", "=", parent["uuid"]]]))
logs = ok("aaaaa", "GET", f"/arvados/v1/logs?filters={q}", cluster("aaaaa")["root_token"])
say("audit entries naming the parent:", [(e["event_type"], e["object_uuid"]) for e in logs["items"]])
assert any(e["object_uuid"] == coll["uuid"] for e in logs["items"])
