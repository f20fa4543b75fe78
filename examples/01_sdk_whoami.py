"""01 — The Arvados Python SDK at one cluster: who am I, my tokens, a project and a collection.

Shows that Arvados' own client works against Hearth unchanged: it reads Hearth's discovery
document and calls users.current, api_client_authorizations.list, groups.create and
collections.create. Run (with the demo running; it printed where demo.json is):

    HEARTH_DEMO=/tmp/hearth-demo-…/demo.json .venv/bin/python examples/01_sdk_whoami.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _demo import CA, cluster, say  # noqa: E402

import arvados  # noqa: E402

a = cluster("aaaaa")
# The SDK builds its HTTPS client with the CA bundle named by SSL_CERT_FILE: the demo's CA.
os.environ["SSL_CERT_FILE"] = CA
api = arvados.api("v1", host=a["url"].removeprefix("https://"), token=a["demo_token"], cache=False, num_retries=0)

me = api.users().current().execute()
say("I am", me["uuid"], me["username"], me["email"])
tokens = api.api_client_authorizations().list().execute()
say("my tokens:", [t["uuid"] for t in tokens["items"]])
project = api.groups().create(body={"group": {"name": "example project", "group_class": "project"}},
                              ensure_unique_name=True).execute()
coll = api.collections().create(body={"collection": {"name": "example data", "owner_uuid": project["uuid"]}},
                                ensure_unique_name=True).execute()
say("made project", project["uuid"], "and collection", coll["uuid"], "in it")
assert coll["owner_uuid"] == project["uuid"]
