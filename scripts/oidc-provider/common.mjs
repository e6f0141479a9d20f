// Settings shared by provider.mjs and forge.mjs (TEST ONLY; see scripts/README-sso.md).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = dirname(fileURLToPath(import.meta.url));

// Fixed defaults, so that tests and forged tokens agree without coordination.
export const DEFAULT_TENANT_ID = 'f7393f3e-c33d-4dfe-b4a8-f473310e7bf5';
// A second tenant id for "wrong tid" tests (nothing serves it).
export const OTHER_TENANT_ID = '9ea5142f-4003-4f72-bd41-7b39ccba08e3';
export const DEFAULT_CLIENT_ID = '13f0eaea-7284-4cae-8822-bcd14389d2fc';

export const KEY_FILES = {
  main: join(HERE, 'keys', 'test-signing-key.private.jwk.json'),
  rollover: join(HERE, 'keys', 'rollover-key.private.jwk.json'),
  attacker: join(HERE, 'keys', 'attacker-key.private.jwk.json'),
};

export function env(name, fallback) {
  const v = process.env[name];
  return v === undefined || v === '' ? fallback : v;
}

export function die(msg) {
  process.stderr.write(`ERROR: ${msg}\n`);
  process.exit(1);
}

export function readJson(path, what) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return die(`cannot read ${what} ${path}: ${e.message}`);
  }
}

export function tenantId() {
  const tid = env('PROCUHELP_OIDC_TENANT_ID', DEFAULT_TENANT_ID);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(tid)) {
    die(`PROCUHELP_OIDC_TENANT_ID must be a lowercase GUID, got ${JSON.stringify(tid)}`);
  }
  return tid;
}

// Entra ID v2.0 issuer for a tenant.
export function entraIssuer(tid) {
  return `https://login.microsoftonline.com/${tid}/v2.0`;
}

export function issuer() {
  return env('PROCUHELP_OIDC_ISSUER', entraIssuer(tenantId()));
}

export function clientId() {
  return env('PROCUHELP_OIDC_CLIENT_ID', DEFAULT_CLIENT_ID);
}

export function loadKey(name) {
  const file = name === 'main' ? env('PROCUHELP_OIDC_SIGNING_KEY_FILE', KEY_FILES.main) : KEY_FILES[name];
  const jwk = readJson(file, `${name} key`);
  if (jwk.kty !== 'RSA' || !jwk.d || !jwk.kid) die(`${file}: expected a private RSA JWK with a kid`);
  return jwk;
}

// The public JWK with its members in the order oidc-provider's JWKS endpoint serves them.
export function publicJwk(jwk) {
  const { kty, use, kid, alg, e, n } = jwk;
  return { kty, use, kid, alg, e, n };
}

// Accounts: {"accounts": [{login, sub, oid, name, preferred_username, email, groups,
// groups_overage, amr, acr}]} from PROCUHELP_OIDC_ACCOUNTS_FILE (default accounts.json).
export function loadAccounts() {
  const file = env('PROCUHELP_OIDC_ACCOUNTS_FILE', join(HERE, 'accounts.json'));
  const doc = readJson(file, 'accounts file');
  const list = Array.isArray(doc) ? doc : doc.accounts;
  if (!Array.isArray(list) || list.length === 0) die(`${file}: expected {"accounts": [...]} with at least one account`);
  const byLogin = new Map();
  const bySub = new Map();
  for (const a of list) {
    for (const k of ['login', 'sub', 'oid']) {
      if (typeof a[k] !== 'string' || !a[k]) die(`${file}: every account needs a string "${k}" (${JSON.stringify(a)})`);
    }
    if (byLogin.has(a.login) || bySub.has(a.sub)) die(`${file}: duplicate login or sub ${a.login}`);
    byLogin.set(a.login, a);
    bySub.set(a.sub, a);
  }
  return { file, list, byLogin, bySub };
}

// The claims an account contributes to ID tokens / userinfo (besides iss/aud/exp/iat/
// nonce/acr/amr/auth_time, which the provider or the forger adds).
export function accountClaims(account, tid) {
  const claims = {
    sub: account.sub,
    oid: account.oid,
    tid,
    ver: '2.0',
  };
  for (const k of ['name', 'preferred_username', 'email']) {
    if (account[k] !== undefined) claims[k] = account[k];
  }
  if (account.groups_overage) {
    // What Entra sends instead of `groups` when a user is in too many groups (>200 in a
    // JWT): a distributed-claims pointer to Microsoft Graph.
    claims._claim_names = { groups: 'src1' };
    claims._claim_sources = {
      src1: { endpoint: `https://graph.microsoft.com/v1.0/users/${account.oid}/getMemberObjects` },
    };
  } else if (account.groups !== undefined) {
    claims.groups = account.groups;
  }
  return claims;
}
