"""04 — The local merge (`users.merge`) with the Arvados SDK, both variants.

Token variant: the old account's token merges it into the account whose token it names
(new_user_token), with redirect; the old token then acts as the new account. Admin variant:
an admin names both uuids. Run:

    HEARTH_DEMO=…/demo.json .venv/bin/python examples/04_local_merge_sdk.py
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _demo import CA, cluster, new_user, say  # noqa: E402

import arvados  # noqa: E402

# The SDK builds its HTTPS client with the CA bundle named by SSL_CERT_FILE: the demo's CA.
os.environ["SSL_CERT_FILE"] = CA
c = cluster("ccccc")
host = c["url"].removeprefix("https://")


def api(token):
    return arvados.api("v1", host=host, token=token, cache=False, num_retries=0)


s = str(int(time.time() * 1000))[-6:]
old, old_token = new_user("ccccc", f"old{s}")
new, new_token = new_user("ccccc", f"new{s}")
out = api(old_token).users().merge(new_owner_uuid=new["uuid"], new_user_token=new_token,
                                   redirect_to_new_user=True).execute()
say("token variant: merged", out["uuid"], "-> redirect", out["redirect_to_user_uuid"])
assert api(old_token).users().current().execute()["uuid"] == new["uuid"]

old2, _ = new_user("ccccc", f"old2{s}")
new2, _ = new_user("ccccc", f"new2{s}")
admin = api(c["root_token"])
out = admin.users().merge(old_user_uuid=old2["uuid"], new_user_uuid=new2["uuid"], new_owner_uuid=new2["uuid"],
                          redirect_to_new_user=True).execute()
say("admin variant: merged", out["uuid"], "-> redirect", out["redirect_to_user_uuid"])
assert out["redirect_to_user_uuid"] == new2["uuid"]
