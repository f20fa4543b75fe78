#!/usr/bin/env bash
# 05 — An admin's batch migration: the report across the federation, a dry run, the run, a re-run.
#
# Quinn has accounts at aaaaa and bbbbb (same verified email); the plan (examples/plan.csv) says
# quinn's home is aaaaa. The run at bbbbb merges bbbbb's account into aaaaa's; a second run
# does nothing and says so. Run (the hearth binary: target/debug/hearth after `cargo build`):
#
#     HEARTH_DEMO=…/demo.json HEARTH=target/debug/hearth bash examples/05_batch_migration.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
hearth="${HEARTH:-hearth}"
py="${PYTHON:-python3}"
field() { "$py" -c "import json,sys; d=json.load(open('$HEARTH_DEMO')); print(eval(sys.argv[1]))" "$1"; }
export HEARTH_CA_CERT="$(field 'd["ca_cert"]')"
a_url="$(field 'd["clusters"]["aaaaa"]["url"]')"; a_root="$(field 'd["clusters"]["aaaaa"]["root_token"]')"
b_url="$(field 'd["clusters"]["bbbbb"]["url"]')"; b_root="$(field 'd["clusters"]["bbbbb"]["root_token"]')"

for c in "$a_url $a_root" "$b_url $b_root"; do
  set -- $c
  "$hearth" admin user create --url "$1" --token "$2" --username quinn --email quinn@example.org --verified \
    --password 'quinn-example-pw' >/dev/null || true   # already there on a second run
done
# A login at home announces quinn's verified email to the peers.
HEARTH_URL="$a_url" "$py" - <<PY
import json, ssl, urllib.request
req = urllib.request.Request("$a_url/hearth/v1/login", data=json.dumps({"login": "quinn", "password": "quinn-example-pw"}).encode(),
                             headers={"Content-Type": "application/json"}, method="POST")
ctx = ssl.create_default_context(cafile="$HEARTH_CA_CERT")
urllib.request.urlopen(req, context=ctx).read()
# The notice travels through aaaaa's outbox: wait until bbbbb holds quinn's home record.
import time, urllib.parse
q = urllib.parse.urlencode({"filters": json.dumps([["email", "=", "quinn@example.org"]]), "count": "none"})
deadline = time.time() + 60
while True:
    ask = urllib.request.Request("$b_url/arvados/v1/users?" + q, headers={"Authorization": "Bearer $b_root"})
    items = json.load(urllib.request.urlopen(ask, context=ctx))["items"]
    if any(u["uuid"].startswith("aaaaa-") for u in items):
        break
    if time.time() > deadline:
        raise SystemExit("bbbbb never heard of quinn's login at aaaaa")
    time.sleep(0.2)
PY
echo "== report (across the federation)"
"$hearth" admin migrate --url "$b_url" --token "$b_root" --report
echo "== dry run at bbbbb"
"$hearth" admin migrate --url "$b_url" --token "$b_root" --plan "$here/plan.csv" --dry-run
echo "== run at bbbbb"
"$hearth" admin migrate --url "$b_url" --token "$b_root" --plan "$here/plan.csv"
echo "== run again: nothing to do"
again="$("$hearth" admin migrate --url "$b_url" --token "$b_root" --plan "$here/plan.csv")"
printf '%s\n' "$again"
grep -q "0 merged" <<<"$again"
