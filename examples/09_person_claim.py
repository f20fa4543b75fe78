"""09 — A person record, attached to data before its person had an account, and the claim.

Alice names "Bea B <bea…@example.org>" as the author of her collection. Bea, logged in with
that verified email, claims the record and can read the collection. A name-only record goes to
the admins' queue instead, and an admin approves it. Run:

    HEARTH_DEMO=…/demo.json python3 examples/09_person_claim.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _demo import cluster, expect, new_user, ok, say  # noqa: E402

s = str(int(time.time() * 1000))[-6:]
alice, a_token = new_user("bbbbb", f"alice{s}")
coll = ok("bbbbb", "POST", "/arvados/v1/collections", a_token, {"collection": {"name": "field survey"}})
person = ok("bbbbb", "POST", "/hearth/v1/persons", a_token,
            {"person": {"name": "Bea B", "emails": [f"bea{s}@example.org"]}})
ok("bbbbb", "POST", f"/hearth/v1/persons/{person['uuid']}/attach", a_token, {"object_uuid": coll["uuid"]})
say("person", person["uuid"], "is the author of", coll["uuid"])
bea, b_token = new_user("bbbbb", f"bea{s}")  # her first login claims the record
got = ok("bbbbb", "GET", f"/hearth/v1/persons/{person['uuid']}", b_token)
say("claimed by", got["claimed_by"], "at her first login")
assert got["claimed_by"] == bea["uuid"]
ok("bbbbb", "GET", f"/arvados/v1/collections/{coll['uuid']}", b_token)
say("bea can read the collection now")
nameonly = ok("bbbbb", "POST", "/hearth/v1/persons", a_token, {"person": {"name": "B. Bee"}})
pending = expect(202, "bbbbb", "POST", f"/hearth/v1/persons/{nameonly['uuid']}/claim", b_token)
say("a name-only record waits for an admin:", pending["claim"]["uuid"])
done = ok("bbbbb", "POST", f"/hearth/v1/admin/claims/{pending['claim']['uuid']}/approve",
          cluster("bbbbb")["root_token"])
say("approved:", done["state"], "record merged into", done["person"]["merged_into"])
