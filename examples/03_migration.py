"""03 — The cross-cluster migration through the JSON API, step by step.

Pat made an account at bbbbb although pat's home is aaaaa (same verified email). Each step and
what it proves:
1. bbbbb lists the candidate: a verified email at aaaaa matches (unverified ones never do).
2. bbbbb makes a pending migration and a request signed by bbbbb, naming pat's bbbbb account.
3. pat logs in at aaaaa with that request: aaaaa answers a token salted for bbbbb and a grant
   signed by aaaaa, bound to the request's nonce, to bbbbb and to ten minutes.
4. bbbbb checks the grant and merges, all or nothing: pat's bbbbb account now redirects to the
   aaaaa account, its objects moved into "Migrated from …", and its old token acts as pat@aaaaa.
   The same grant again is refused ("already merged").
Run:  HEARTH_DEMO=…/demo.json python3 examples/03_migration.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _demo import call, new_user, ok, say  # noqa: E402

suffix = str(int(time.time() * 1000))[-6:]
name = f"pat{suffix}"
home, _ = new_user("aaaaa", name, email=f"{name}@example.org", password="pat-home-pw")
stray, stray_token = new_user("bbbbb", name, email=f"{name}@example.org", password="pat-stray-pw")
ok("bbbbb", "POST", "/arvados/v1/collections", stray_token, {"collection": {"name": "pat's notes"}})
ok("aaaaa", "POST", "/hearth/v1/login", None, {"login": name, "password": "pat-home-pw"})  # the login notice

deadline = time.time() + 30
while True:
    items = ok("bbbbb", "GET", "/hearth/v1/migration_candidates", stray_token)["items"]
    if items:
        break
    if time.time() > deadline:
        sys.exit("no candidate appeared")
    time.sleep(0.2)
say("1. candidate:", items[0])
m = ok("bbbbb", "POST", "/hearth/v1/migrations", stray_token, {"target_cluster": "aaaaa"})
say("2. pending migration", m["uuid"], "with a request signed by bbbbb")
g = ok("aaaaa", "POST", "/hearth/v1/login", None,
       {"login": name, "password": "pat-home-pw", "remote": "bbbbb", "migration_request": m["request"]})
say("3. aaaaa answered a token salted for bbbbb and a signed grant for", g["user"]["uuid"])
done = ok("bbbbb", "POST", f"/hearth/v1/migrations/{m['uuid']}/confirm", stray_token, {"grant": g["migration_grant"]})
say("4. merged:", done["old_user"]["uuid"], "->", done["new_user"]["uuid"], "objects in", done["new_owner_uuid"])
assert done["new_user"]["uuid"] == home["uuid"]
me = ok("bbbbb", "GET", "/arvados/v1/users/current", stray_token)
assert me["uuid"] == home["uuid"], me
status, again = call("bbbbb", "POST", f"/hearth/v1/migrations/{m['uuid']}/confirm", stray_token,
                     {"grant": g["migration_grant"]})
say("   the same grant again:", status, again.get("errors"))
assert status >= 400
