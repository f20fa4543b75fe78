// A real OpenID Connect provider for Hearth's tests only: panva's oidc-provider (OpenID-certified),
// served over HTTPS on a loopback address, with an in-memory adapter.
//
// Settings (environment):
//   OIDC_ISSUER    https://127.0.0.200:PORT (the listening address and port are taken from it)
//   OIDC_CERT      PEM certificate for the issuer's host (signed by the test federation's CA)
//   OIDC_KEY       its PEM key
//   OIDC_JWKS      file of the private signing keys (a JWKS); made with one fresh RS256 key when
//                  missing. Starting again with another file rotates the keys.
//   OIDC_CLIENTS   JSON list of clients: [{"client_id", "client_secret", "redirect_uris": [...]}]
//   OIDC_ACCOUNTS  file of the accounts, read on every use, so a test may change them while the
//                  provider runs: {"<login>": {"sub", "email", "email_verified", "name",
//                  "preferred_username", "given_name", "family_name"}} (sub defaults to the login)
//
// A person logs in on the provider's own page (/interaction/<uid>: a login name, any password) and
// is not asked for consent. POST /test/forge {"mode": "..."} makes the provider replace the ID
// token of its next token response with a forged one (none, tamper, aud, expired, nonce, hs256,
// unknown_kid, iss): the relying party's checks of what a real provider never sends are then
// driven through its real callback. Prints "ready <issuer>" once it listens.

import Provider from 'oidc-provider';
import * as jose from 'jose';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return v;
}

const issuer = need('OIDC_ISSUER');
const certPem = fs.readFileSync(need('OIDC_CERT'));
const keyPem = fs.readFileSync(need('OIDC_KEY'));
const jwksPath = need('OIDC_JWKS');
const clients = JSON.parse(need('OIDC_CLIENTS')).map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));
const accountsPath = need('OIDC_ACCOUNTS');

async function signingKeys() {
  if (fs.existsSync(jwksPath)) return JSON.parse(fs.readFileSync(jwksPath, 'utf8'));
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: crypto.randomUUID(), alg: 'RS256', use: 'sig' };
  const jwks = { keys: [jwk] };
  fs.writeFileSync(jwksPath, JSON.stringify(jwks));
  return jwks;
}

function accounts() {
  return JSON.parse(fs.readFileSync(accountsPath, 'utf8'));
}

const jwks = await signingKeys();

const provider = new Provider(issuer, {
  clients,
  jwks,
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  findAccount: async (ctx, id) => {
    const a = accounts()[id];
    if (!a) return undefined;
    return { accountId: id, claims: async () => ({ ...a, sub: a.sub ?? id }) };
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username', 'given_name', 'family_name'],
  },
  // The claims of the requested scopes go into the ID token itself (Hearth reads them there).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // No consent screen: every client here is the test's own.
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const found = await ctx.oidc.provider.Grant.find(grantId);
      if (found) return found;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile');
    await grant.save();
    return grant;
  },
});

let forge = null;

const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const unb64 = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));

async function forged(idToken, mode) {
  const [h, p, s] = idToken.split('.');
  const header = unb64(h);
  const payload = unb64(p);
  const now = Math.floor(Date.now() / 1000);
  const key = await jose.importJWK(jwks.keys[0], 'RS256');
  const sign = (claims, hdr = header, k = key) => new jose.SignJWT(claims).setProtectedHeader(hdr).sign(k);
  switch (mode) {
    case 'none':
      return `${b64({ alg: 'none' })}.${p}.`;
    case 'tamper':
      return `${h}.${b64({ ...payload, sub: 'someone-else' })}.${s}`;
    case 'aud':
      return sign({ ...payload, aud: 'another-client' });
    case 'expired':
      return sign({ ...payload, iat: now - 7200, exp: now - 3600 });
    case 'nonce':
      return sign({ ...payload, nonce: 'not-the-nonce-of-this-login' });
    case 'iss':
      return sign({ ...payload, iss: 'https://issuer.invalid' });
    case 'hs256': {
      const secret = clients.find((c) => c.client_id === payload.aud)?.client_secret ?? '';
      return sign(payload, { alg: 'HS256', kid: header.kid }, new TextEncoder().encode(secret));
    }
    case 'unknown_kid': {
      const { privateKey } = await jose.generateKeyPair('RS256');
      return sign(payload, { alg: 'RS256', kid: crypto.randomUUID() }, privateKey);
    }
    default:
      throw new Error(`unknown forge mode ${mode}`);
  }
}

provider.use(async (ctx, next) => {
  await next();
  if (forge && ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
    const mode = forge;
    forge = null;
    ctx.body = { ...ctx.body, id_token: await forged(ctx.body.id_token, mode) };
  }
});

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, client, error) {
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><html><head><title>Test provider</title></head><body>
<h1>Test provider sign-in</h1>
<p id="client">Signing in to ${escape(client)}</p>
${error ? `<p id="error">${escape(error)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}">
<label for="login">Login</label> <input id="login" name="login" autofocus>
<label for="password">Password</label> <input id="password" name="password" type="password">
<button id="submit" type="submit">Sign in</button>
</form></body></html>`);
}

const callback = provider.callback();

const server = https.createServer({ cert: certPem, key: keyPem }, async (req, res) => {
  try {
    const url = new URL(req.url, issuer);
    if (url.pathname === '/test/forge' && req.method === 'POST') {
      forge = JSON.parse((await readBody(req)) || '{}').mode ?? null;
      res.writeHead(204).end();
      return;
    }
    if (/^\/interaction\/[^/]+$/.test(url.pathname)) {
      const details = await provider.interactionDetails(req, res);
      if (req.method === 'GET') {
        loginPage(res, details.uid, details.params.client_id);
        return;
      }
      const form = new URLSearchParams(await readBody(req));
      const login = form.get('login') ?? '';
      if (!accounts()[login]) {
        loginPage(res, details.uid, details.params.client_id, `no account ${login}`);
        return;
      }
      await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      return;
    }
    callback(req, res);
  } catch (e) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e?.stack ?? e));
  }
});

const { hostname, port } = new URL(issuer);
server.listen(Number(port), hostname, () => {
  console.log(`ready ${issuer}`);
});
