#!/usr/bin/env python3
"""Drive a running Hearth cluster with the real Arvados Python SDK (arvados-python-client).

Run by the Rust integration tests as `python3 tests/sdk/check_sdk.py` (with the interpreter of a
venv that has the SDK) and this environment:

  ARVADOS_API_HOST        127.0.0.1:PORT of the cluster
  ARVADOS_API_TOKEN       token of a normal user ("me")
  HEARTH_OTHER_USER_TOKEN token of a second normal user ("other"); merged into "me" at the end
  HEARTH_ADMIN_TOKEN      token of an admin
  HEARTH_ANONYMOUS_TOKEN  token of an anonymous session (POST /hearth/v1/anonymous)
  HEARTH_CA_CERT          PEM of the CA that signed the server's certificate

The same script runs with both lines of the SDK that sites use (2.7.x, the last to ship the
federation admin tools, and 3.x); it prints the version it runs with first.

TLS is verified for real: the SDK picks its CA bundle from SSL_CERT_FILE when it builds a client
(arvados.util.ca_certs_path), so we point that at HEARTH_CA_CERT and never pass insecure=True.
One check proves verification is on (a client trusting only the public CAs is refused).

Prints one line per check and exits 1 at the first failure, with the reason.
The run ends with "sdk checks: N passed, 0 failed".
"""

import hashlib
import hmac
import os
import re
import secrets
import ssl
import sys
import traceback

PASSED = 0


def finish(failed):
    print(f"sdk checks: {PASSED} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


def fail(what, why):
    print(f"FAIL {what}: {why}", flush=True)
    finish(1)


def check(what, ok, why=""):
    global PASSED
    if not ok:
        fail(what, why or "condition is false")
    PASSED += 1
    print(f"ok   {what}", flush=True)


def equal(what, got, want):
    check(what, got == want, f"got {got!r}, want {want!r}")


def status_of(err):
    resp = getattr(err, "resp", None)
    return getattr(resp, "status", None)


def expect_error(what, statuses, call):
    """`call` must raise arvados.errors.ApiError with one of `statuses`."""
    import arvados.errors

    try:
        got = call()
    except arvados.errors.ApiError as err:
        check(what, status_of(err) in statuses, f"status {status_of(err)} not in {statuses}: {err}")
        return
    fail(what, f"no error; the call answered {got!r}")


def env(name):
    value = os.environ.get(name, "")
    if not value:
        fail("environment", f"{name} is not set")
    return value


def main():
    host = env("ARVADOS_API_HOST")
    my_token = env("ARVADOS_API_TOKEN")
    other_token = env("HEARTH_OTHER_USER_TOKEN")
    admin_token = env("HEARTH_ADMIN_TOKEN")
    anonymous_token = env("HEARTH_ANONYMOUS_TOKEN")
    ca_cert = env("HEARTH_CA_CERT")
    if not os.path.isfile(ca_cert):
        fail("environment", f"HEARTH_CA_CERT {ca_cert} is not a file")
    os.environ["SSL_CERT_FILE"] = ca_cert  # read by the SDK each time it builds a client

    import arvados
    import arvados.errors
    import arvados.util
    import httplib2
    from importlib import metadata

    print(f"arvados-python-client {metadata.version('arvados-python-client')}", flush=True)

    def client(token, **kw):
        # cache=False: no discovery document from ~/.cache; num_retries=0: an error shows at once
        # instead of after the SDK's ten retries with backoff.
        return arvados.api("v1", host=host, token=token, cache=False, num_retries=0, **kw)

    run = secrets.token_hex(4)

    # -- TLS and the discovery document
    try:
        client(my_token, http=httplib2.Http(ca_certs=httplib2.CA_CERTS)).users().current().execute()
        fail("TLS is verified", "a client that trusts only the public CAs was let in")
    except ssl.SSLError:
        check("TLS is verified (public CAs only: refused)", True)

    api = client(my_token)
    prefix = api._rootDesc.get("uuidPrefix", "")
    check("discovery: uuidPrefix is a cluster id", re.fullmatch(r"[a-z0-9]{5}", prefix) is not None,
          f"uuidPrefix {prefix!r}")
    check("discovery: users().merge exists", callable(getattr(api.users(), "merge", None)))
    uuid_re = {t: re.compile(rf"{prefix}-{t}-[a-z0-9]{{15}}") for t in ("tpzed", "gj3su", "j7d0g", "4zz18", "o0j2j")}

    def is_uuid(kind, value):
        return isinstance(value, str) and uuid_re[kind].fullmatch(value) is not None

    # -- users
    me = api.users().current().execute()
    my_uuid = me.get("uuid")
    check("users().current(): uuid has the cluster prefix", is_uuid("tpzed", my_uuid), f"uuid {my_uuid!r}")
    equal("users().current(): is_admin is false", me.get("is_admin"), False)

    got = api.users().get(uuid=my_uuid).execute()
    equal("users().get(uuid=me)", got.get("uuid"), my_uuid)

    page = api.users().list().execute()
    uuids = [u.get("uuid") for u in page.get("items", [])]
    check("users().list() contains me", my_uuid in uuids, f"items: {uuids}")
    check("users().list(): items_available >= 1", (page.get("items_available") or 0) >= 1,
          f"items_available {page.get('items_available')!r}")

    tok = api.api_client_authorizations().current().execute()
    equal("api_client_authorizations().current(): owner is me", tok.get("owner_uuid"), my_uuid)
    check("api_client_authorizations().current(): uuid", is_uuid("gj3su", tok.get("uuid")), repr(tok.get("uuid")))
    equal("api_client_authorizations().current(): api_token is the secret presented",
          tok.get("api_token"), my_token.split("/")[2])

    # -- the exported config and the vocabulary
    config = api.configs().get().execute()
    equal("configs().get(): ClusterID", config.get("ClusterID"), prefix)
    equal("configs().get(): Login.LoginCluster", config.get("Login", {}).get("LoginCluster"), "")
    equal("configs().get(): Services.Controller.ExternalURL",
          config.get("Services", {}).get("Controller", {}).get("ExternalURL"), f"https://{host}/")
    check("configs().get(): API.MaxItemsPerResponse", (config.get("API", {}).get("MaxItemsPerResponse") or 0) >= 100,
          repr(config.get("API")))
    equal("api.config() (the SDK's cached copy)", api.config().get("ClusterID"), prefix)
    equal("vocabularies().get()", api.vocabularies().get().execute(), {"strict_tags": False, "tags": {}})

    # -- users.system
    root = api.users().system().execute()
    equal("users().system(): the system user", root.get("uuid"), f"{prefix}-tpzed-000000000000000")

    # -- tokens as Arvados shows them: the secret alone; the client builds v2/<uuid>/<secret>
    made = api.api_client_authorizations().create(body={"api_client_authorization": {}}).execute()
    secret = made.get("api_token") or ""
    check("api_client_authorizations().create(): api_token is the secret alone",
          "/" not in secret and len(secret) >= 32, repr(secret))
    full = f"v2/{made.get('uuid')}/{secret}"
    equal("a token built from uuid and secret works", client(full).users().current().execute().get("uuid"), my_uuid)
    salted = f"v2/{made.get('uuid')}/" + hmac.new(secret.encode(), msg=prefix.encode(), digestmod=hashlib.sha1).hexdigest()
    equal("the token salted (HMAC-SHA1) for this cluster works here, as in Arvados",
          client(salted).users().current().execute().get("uuid"), my_uuid)
    got = api.api_client_authorizations().get(uuid=made.get("uuid")).execute()
    check("api_client_authorizations().get(): no secret to show", got.get("api_token") is None, repr(got))

    # -- groups
    gname = f"sdk project {run}"
    group = api.groups().create(body={"group": {"name": gname, "group_class": "project"}}).execute()
    group_uuid = group.get("uuid")
    check("groups().create(): uuid", is_uuid("j7d0g", group_uuid), f"uuid {group_uuid!r}")
    equal("groups().create(): name", group.get("name"), gname)
    equal("groups().create(): group_class", group.get("group_class"), "project")
    equal("groups().create(): owned by me", group.get("owner_uuid"), my_uuid)

    equal("groups().get()", api.groups().get(uuid=group_uuid).execute().get("name"), gname)

    # -- names are unique per owner; ensure_unique_name picks a free one, as Arvados does
    expect_error("groups().create() with a taken name is 422", (422,),
                 lambda: api.groups().create(body={"group": {"name": gname, "group_class": "project"}}).execute())
    try:
        api.groups().create(body={"group": {"name": gname, "group_class": "project"}}).execute()
    except arvados.errors.ApiError as err:
        check("... saying 'duplicate key', as Arvados does", "duplicate key" in str(err), str(err))
    twin = api.groups().create(body={"group": {"name": gname, "group_class": "project"}},
                               ensure_unique_name=True).execute()
    equal("groups().create(ensure_unique_name=True): Arvados' free name",
          twin.get("name"), f"{gname} ({twin.get('uuid', '')[-15:]})")
    trashed = api.groups().trash(uuid=twin.get("uuid")).execute()
    equal("groups().trash()", trashed.get("is_trashed"), True)
    expect_error("a trashed project is not found", (404,), lambda: api.groups().get(uuid=twin.get("uuid")).execute())
    equal("groups().untrash()", api.groups().untrash(uuid=twin.get("uuid")).execute().get("is_trashed"), False)

    page = api.groups().list(filters=[["name", "=", gname]]).execute()
    equal("groups().list(filters=name): exactly the new group",
          [g.get("uuid") for g in page.get("items", [])], [group_uuid])
    page = api.groups().list(filters=[["name", "=", f"no such project {run}"]]).execute()
    equal("groups().list(filters=other name): nothing", page.get("items"), [])

    # -- collections
    cname = f"sdk collection {run}"
    coll = api.collections().create(body={"collection": {"name": cname, "owner_uuid": group_uuid}}).execute()
    coll_uuid = coll.get("uuid")
    check("collections().create(): uuid", is_uuid("4zz18", coll_uuid), f"uuid {coll_uuid!r}")
    equal("collections().create(): owner is the project", coll.get("owner_uuid"), group_uuid)

    page = api.collections().list(filters=[["owner_uuid", "=", group_uuid]]).execute()
    equal("collections().list(filters=owner_uuid)", [c.get("uuid") for c in page.get("items", [])], [coll_uuid])

    contents = api.groups().contents(uuid=group_uuid).execute()
    equal("groups().contents(uuid=project): the collection",
          [i.get("uuid") for i in contents.get("items", [])], [coll_uuid])
    listed = list(arvados.util.keyset_list_all(api.groups().contents, uuid=my_uuid))
    check("keyset_list_all(groups().contents, uuid=me): my projects",
          {group_uuid, twin.get("uuid")} <= {i.get("uuid") for i in listed}, repr([i.get("uuid") for i in listed]))

    renamed = f"{cname} renamed"
    got = api.collections().update(uuid=coll_uuid, body={"collection": {"name": renamed}}).execute()
    equal("collections().update(): new name", got.get("name"), renamed)
    equal("collections().get() after update", api.collections().get(uuid=coll_uuid).execute().get("name"), renamed)

    # -- sharing with a second user
    other = client(other_token)
    other_me = other.users().current().execute()
    other_uuid = other_me.get("uuid")
    check("other user: a different account", is_uuid("tpzed", other_uuid) and other_uuid != my_uuid,
          f"other {other_uuid!r}, me {my_uuid!r}")
    expect_error("other user cannot read my collection yet (403/404)", (403, 404),
                 lambda: other.collections().get(uuid=coll_uuid).execute())

    link = api.links().create(body={"link": {
        "link_class": "permission", "name": "can_read", "tail_uuid": other_uuid, "head_uuid": group_uuid,
    }}).execute()
    check("links().create(permission can_read)", is_uuid("o0j2j", link.get("uuid")), repr(link))
    equal("links().create(): head is the project", link.get("head_uuid"), group_uuid)
    equal("other user reads the collection through the project",
          other.collections().get(uuid=coll_uuid).execute().get("name"), renamed)
    equal("other user: groups().shared() shows the project",
          [g.get("uuid") for g in other.groups().shared().execute().get("items", [])], [group_uuid])
    equal("links().get_permissions(project): the link",
          [l.get("uuid") for l in api.links().get_permissions(uuid=group_uuid).execute().get("items", [])],
          [link.get("uuid")])
    expect_error("other user: links().get_permissions() needs can_manage (403)", (403,),
                 lambda: other.links().get_permissions(uuid=group_uuid).execute())

    # -- an anonymous session (no login): its own collections, nothing else
    anon = client(anonymous_token)
    acoll = anon.collections().create(body={"collection": {"name": f"anonymous {run}"}}).execute()
    check("anonymous: collections().create()", is_uuid("4zz18", acoll.get("uuid")), repr(acoll))
    equal("anonymous: collections().list() shows only its own",
          [c.get("uuid") for c in anon.collections().list().execute().get("items", [])], [acoll.get("uuid")])
    equal("anonymous: collections().update()",
          anon.collections().update(uuid=acoll.get("uuid"), body={"collection": {"name": "renamed"}})
          .execute().get("name"), "renamed")
    expect_error("anonymous: someone else's collection is 404", (404,),
                 lambda: anon.collections().get(uuid=coll_uuid).execute())
    expect_error("anonymous: users().current() is 401", (401,), lambda: anon.users().current().execute())
    expect_error("anonymous: groups().list() is 401", (401,), lambda: anon.groups().list().execute())

    # -- refusals
    expect_error("users().get(unknown uuid) is 404", (404,),
                 lambda: api.users().get(uuid=f"{prefix}-tpzed-nosuchuser00000").execute())
    bad = client(f"v2/{prefix}-gj3su-nosuchtoken0000/{secrets.token_hex(20)}")
    expect_error("invalid token: users().current() is 401", (401,), lambda: bad.users().current().execute())
    expect_error("normal user cannot use the admin merge (403)", (403,),
                 lambda: api.users().merge(old_user_uuid=other_uuid, new_user_uuid=my_uuid,
                                           new_owner_uuid=my_uuid, redirect_to_new_user=True).execute())

    expect_error("normal user: bypass_federation is for admins (403)", (403,),
                 lambda: api.users().list(bypass_federation=True).execute())

    # -- an admin sets a user up, the user activates itself, the admin unsets it up
    admin = client(admin_token)
    equal("admin: users().current() is_admin", admin.users().current().execute().get("is_admin"), True)
    everyone = list(arvados.util.keyset_list_all(admin.users().list, bypass_federation=True))
    check("admin: keyset_list_all(users().list, bypass_federation=True) has me",
          my_uuid in [u.get("uuid") for u in everyone], repr([u.get("uuid") for u in everyone]))
    newbie = admin.users().create(body={"user": {
        "email": f"newbie-{run}@example.org", "username": f"newbie{run}", "is_active": False}}).execute()
    newbie_uuid = newbie.get("uuid")
    equal("admin: users().create(is_active=False)", newbie.get("is_active"), False)
    tok = admin.api_client_authorizations().create(
        body={"api_client_authorization": {"owner_uuid": newbie_uuid}}).execute()
    equal("admin: a token for another user (owner_uuid)", tok.get("owner_uuid"), newbie_uuid)
    newbie_api = client(f"v2/{tok.get('uuid')}/{tok.get('api_token')}")
    expect_error("users().activate() before setup is 422", (422,),
                 lambda: newbie_api.users().activate(uuid=newbie_uuid).execute())
    setup = admin.users().setup(uuid=newbie_uuid).execute()
    equal("admin: users().setup(uuid=…) invites", [i.get("is_invited") for i in setup.get("items", [])], [True])
    equal("users().activate() after setup", newbie_api.users().activate(uuid=newbie_uuid).execute().get("is_active"),
          True)
    gone = admin.users().unsetup(uuid=newbie_uuid).execute()
    equal("admin: users().unsetup()", (gone.get("is_active"), gone.get("is_invited")), (False, False))
    expect_error("after unsetup the user's token is gone (401)", (401,),
                 lambda: newbie_api.users().current().execute())

    # -- admin merge: other -> me, with redirect
    old = admin.users().merge(old_user_uuid=other_uuid, new_user_uuid=my_uuid, new_owner_uuid=my_uuid,
                              redirect_to_new_user=True).execute()
    equal("users().merge(): returns the old user", old.get("uuid"), other_uuid)
    equal("users().merge(): old user redirects to me", old.get("redirect_to_user_uuid"), my_uuid)
    equal("after merge: the other user's token acts as me", other.users().current().execute().get("uuid"), my_uuid)
    expect_error("merging again is refused (422)", (422,),
                 lambda: admin.users().merge(old_user_uuid=other_uuid, new_user_uuid=my_uuid,
                                             new_owner_uuid=my_uuid, redirect_to_new_user=True).execute())

    finish(0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as err:  # an unexpected error is a failure of the check in progress
        traceback.print_exc()
        fail(f"check #{PASSED + 1}", f"unexpected {type(err).__name__}: {err}")
