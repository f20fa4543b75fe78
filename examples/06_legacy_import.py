"""06 — Returning users' legacy data: import a JSONL file, then the person claims it.

`hearth admin import-legacy examples/legacy.jsonl` imports line 1 and refuses lines 2 and 3 by
number (a malformed email, a collection without a name); a second run says "unchanged". Rosa,
logged in with the verified email of line 1, is offered the two collections and claims them:
they move into a project of hers. Run (HEARTH: the hearth binary):

    HEARTH_DEMO=…/demo.json HEARTH=target/debug/hearth python3 examples/06_legacy_import.py
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _demo import CA, call, cluster, new_user, ok, say  # noqa: E402

c = cluster("ccccc")
env = dict(os.environ, HEARTH_URL=c["url"], HEARTH_TOKEN=c["root_token"], HEARTH_CA_CERT=CA)
jsonl = os.path.join(os.path.dirname(__file__), "legacy.jsonl")
out = subprocess.run([os.environ.get("HEARTH", "hearth"), "admin", "import-legacy", jsonl, "--json"], env=env,
                     check=True, capture_output=True, text=True).stdout
report = json.loads(out)
say("import:", report["counts"])
for line in report["lines"]:
    if line["outcome"] == "refused":
        say(f"  line {line['line']} refused: {line['error']}")
assert report["counts"]["refused"] == 2
status, login = call("ccccc", "POST", "/hearth/v1/login", None, {"login": "rosa", "password": "pw-rosa-example"})
token = login["api_token"] if status == 200 else new_user("ccccc", "rosa", email="rosa@example.org")[1]
offers = ok("ccccc", "GET", "/hearth/v1/legacy_offers", token)["items"]
say("rosa is offered:", [(o["legacy_id"], [x["name"] for x in o["collections"]]) for o in offers])
if offers:
    done = ok("ccccc", "POST", f"/hearth/v1/legacy_offers/{offers[0]['legacy_id']}/claim", token)
    say("claimed: moved", done["moved"], "into project", done["owner_uuid"])
else:
    say("(already claimed on an earlier run)")
