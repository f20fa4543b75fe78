"""10 — Log in at aaaaa through an OpenID Connect provider (the demo's test provider, ORCID-like).

The demo runs panva's oidc-provider (tests/oidc-provider) when Node is there, and configures it
for aaaaa as provider `demo` with `orcid = true`. This script is a browser without a browser:
it follows the redirects to the provider's own sign-in page, signs in as ada, and lands on
aaaaa's account page, logged in as an account keyed on the provider's subject (ada's ORCID iD),
never on her email. Run:

    HEARTH_DEMO=…/demo.json python3 examples/10_oidc_login.py
"""

import http.cookiejar
import os
import re
import ssl
import sys
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from _demo import CA, cluster, ok, say  # noqa: E402

a = cluster("aaaaa")["url"]
ready = ok("aaaaa", "GET", "/readyz")
if "demo" not in (ready.get("oidc") or {}):
    say("skipped: the demo started no OpenID provider (it needs node and tests/oidc-provider/node_modules)")
    sys.exit(0)
jar = http.cookiejar.CookieJar()
browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                      urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=CA)))
page = browser.open(f"{a}/login/oidc/demo/start?return_to=%2Faccount")
html = page.read().decode()
say("at the provider:", page.geturl().split("?")[0])
action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
form = urllib.parse.urlencode({"login": "ada", "password": "anything"}).encode()
page = browser.open(urllib.request.Request(urllib.parse.urljoin(page.geturl(), action), data=form))
html = page.read().decode()
say("back at:", page.geturl().split("?")[0])
assert page.geturl().startswith(f"{a}/account"), page.geturl()
assert "0000-0002-1825-0097" in html, "the account page does not show ada's ORCID iD"
uuid = re.search(r'id="user-uuid">([^<]+)<', html).group(1)
say("logged in at aaaaa as", uuid, "with ORCID iD 0000-0002-1825-0097")
