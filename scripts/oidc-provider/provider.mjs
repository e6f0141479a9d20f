// TEST-ONLY OpenID Connect provider shaped like Microsoft Entra ID (npm oidc-provider 9).
// Never deploy: its signing key is committed (keys/) and login needs no password.
//
//   node provider.mjs [--port=N]        (or PROCUHELP_OIDC_PORT; 0 = any free port)
//
// Listens on 127.0.0.1 only. The issuer string is Entra's
// https://login.microsoftonline.com/<tid>/v2.0 while every endpoint is served from
// http://127.0.0.1:<port> (discovery advertises the loopback URLs): a relying party must
// take endpoint URLs from discovery and still compare the issuer string exactly.
//
// Discovery:   /<tid>/v2.0/.well-known/openid-configuration   (Entra's path)
//              /.well-known/openid-configuration               (the same document)
//              /common/v2.0/..., /organizations/v2.0/...      (the same, but the issuer is
//                                                              Entra's multi-tenant template
//                                                              https://login.microsoftonline.com/{tenantid}/v2.0)
// Endpoints:   /<tid>/oauth2/v2.0/authorize, /<tid>/oauth2/v2.0/token,
//              /<tid>/discovery/v2.0/keys (JWKS), /oidc/userinfo, /<tid>/oauth2/v2.0/logout
//
// Browserless login: the authorization endpoint redirects to /interaction/<uid>, which
//   - finishes login and consent at once when the authorization request carried
//     login_hint=<account login> (see accounts.json), then redirects back to the
//     authorization endpoint, which redirects to redirect_uri?code=...&state=...;
//   - otherwise answers 200 with JSON {"uid", "login": "/interaction/<uid>/login?login_hint="}.
//   /interaction/<uid>/login?login_hint=<login>[&amr=pwd,mfa][&acr=...] finishes it with
//   that account (amr/acr override the account's own for this login).
// An HTTP client that keeps cookies and follows redirects ends at the redirect_uri.
//
// Test controls (loopback only, no auth):
//   GET /_test/stats                 {"discovery": n, "jwks": n, "token": n} request counts
//   PUT /_test/jwks?keys=main,rollover   which keys the JWKS endpoint publishes
//                                    (default main; the OP always signs with main)
//   GET /_test/accounts              the accounts in use
//
// Environment (all optional):
//   PROCUHELP_OIDC_PORT               port (default 0 = pick one; printed on stdout)
//   PROCUHELP_OIDC_TENANT_ID          tenant GUID (default f7393f3e-c33d-4dfe-b4a8-f473310e7bf5)
//   PROCUHELP_OIDC_ISSUER             issuer string (default the Entra v2.0 one above)
//   PROCUHELP_OIDC_CLIENT_ID          (default 13f0eaea-7284-4cae-8822-bcd14389d2fc)
//   PROCUHELP_OIDC_CLIENT_SECRET_FILE file holding the client secret (default: the fixed
//                                     string "procuhelp-test-client-secret", with a warning)
//   PROCUHELP_OIDC_REDIRECT_URIS      comma-separated registered redirect URIs (default
//                                     http://127.0.0.1/callback); loopback ones match any port
//   PROCUHELP_OIDC_LOOPBACK_ANY_PATH  1 (default): also accept any http://127.0.0.1:<port>/<path>
//                                     or http://localhost:<port>/<path> redirect URI; 0: only
//                                     the registered ones (port still free, RFC 8252)
//   PROCUHELP_OIDC_ACCOUNTS_FILE      accounts JSON (default accounts.json beside this file)
//   PROCUHELP_OIDC_SIGNING_KEY_FILE   private RSA JWK (default keys/test-signing-key.private.jwk.json)
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

import {
  accountClaims, clientId, die, env, issuer, loadAccounts, loadKey, publicJwk, tenantId,
} from './common.mjs';

// ---- configuration -----------------------------------------------------------------

const portArg = process.argv.slice(2).find((a) => a.startsWith('--port='));
const PORT = Number(portArg ? portArg.slice('--port='.length) : env('PROCUHELP_OIDC_PORT', '0'));
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) die(`bad port ${PORT}`);

const TID = tenantId();
const ISSUER = issuer();
const CLIENT_ID = clientId();
const secretFile = env('PROCUHELP_OIDC_CLIENT_SECRET_FILE', '');
let CLIENT_SECRET = 'procuhelp-test-client-secret';
if (secretFile) {
  try {
    CLIENT_SECRET = readFileSync(secretFile, 'utf8').trim();
  } catch (e) {
    die(`cannot read PROCUHELP_OIDC_CLIENT_SECRET_FILE ${secretFile}: ${e.message}`);
  }
  if (CLIENT_SECRET.length < 16) die(`${secretFile}: client secret shorter than 16 characters`);
} else {
  process.stderr.write('WARNING: PROCUHELP_OIDC_CLIENT_SECRET_FILE unset; using the fixed test secret\n');
}
const REDIRECT_URIS = env('PROCUHELP_OIDC_REDIRECT_URIS', 'http://127.0.0.1/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const LOOPBACK_ANY_PATH = env('PROCUHELP_OIDC_LOOPBACK_ANY_PATH', '1') === '1';
const ACCOUNTS = loadAccounts();
const KEYS = { main: loadKey('main'), rollover: loadKey('rollover') };

const ROUTES = {
  authorization: `/${TID}/oauth2/v2.0/authorize`,
  token: `/${TID}/oauth2/v2.0/token`,
  jwks: `/${TID}/discovery/v2.0/keys`,
  userinfo: '/oidc/userinfo',
  end_session: `/${TID}/oauth2/v2.0/logout`,
};
const DISCOVERY = '/.well-known/openid-configuration';
const DISCOVERY_ALIASES = new Map([
  [`/${TID}/v2.0${DISCOVERY}`, null],
  [`/common/v2.0${DISCOVERY}`, 'https://login.microsoftonline.com/{tenantid}/v2.0'],
  [`/organizations/v2.0${DISCOVERY}`, 'https://login.microsoftonline.com/{tenantid}/v2.0'],
]);

// Entra puts these in v2.0 ID tokens (with the openid scope alone, for this test OP).
const ID_TOKEN_CLAIMS = [
  'sub', 'tid', 'oid', 'groups', 'amr', 'acr', 'ver', 'preferred_username', 'email', 'name',
];

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    // "native" makes oidc-provider accept a loopback redirect URI on any port (RFC 8252
    // §7.3); it is still a confidential client (client_secret_basic at the token endpoint).
    application_type: 'native',
    redirect_uris: REDIRECT_URIS,
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
  pkce: { required: () => true }, // S256 is the only method oidc-provider 9 supports
  responseTypes: ['code'],
  scopes: ['openid', 'profile', 'email', 'offline_access'],
  claims: {
    openid: ID_TOKEN_CLAIMS,
    profile: ['name', 'preferred_username'],
    email: ['email'],
  },
  conformIdTokenClaims: false, // claims go into the ID token, not only to userinfo
  jwks: { keys: [KEYS.main] },
  enabledJWA: { idTokenSigningAlgValues: ['RS256'] },
  routes: ROUTES,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  features: {
    devInteractions: { enabled: false },
    // Not Entra features: keep the metadata close to Entra's.
    dPoP: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    resourceIndicators: { enabled: false },
    rpInitiatedLogout: { enabled: true },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, sub) => {
    const account = ACCOUNTS.bySub.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      claims: async () => accountClaims(account, TID),
    };
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    RefreshToken: 86400,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
  },
  renderError: async (ctx, out) => {
    ctx.type = 'json';
    ctx.body = out;
  },
});

if (LOOPBACK_ANY_PATH) {
  // Tests run the relying party on random ports and paths (one per organisation).
  const registered = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    if (registered.call(this, value)) return true;
    try {
      const u = new URL(value);
      return u.protocol === 'http:' && ['127.0.0.1', 'localhost'].includes(u.hostname)
        && u.username === '' && u.password === '' && u.hash === '';
    } catch {
      return false;
    }
  };
}

// ---- browserless interactions --------------------------------------------------------

async function finish(ctx, interaction, login, overrides = {}) {
  const { prompt, params } = interaction;
  const result = {};
  let accountId = interaction.session?.accountId;
  if (prompt.name === 'login') {
    const account = ACCOUNTS.byLogin.get(login);
    if (!account) {
      ctx.status = 400;
      ctx.body = { error: 'unknown_account', login, accounts: [...ACCOUNTS.byLogin.keys()] };
      return;
    }
    accountId = account.sub;
    const amr = overrides.amr ?? account.amr;
    const acr = overrides.acr ?? account.acr;
    result.login = { accountId, ...(amr ? { amr } : {}), ...(acr ? { acr } : {}) };
  }
  // Consent: grant every scope that was asked for, now, so that one interaction is enough
  // (native clients always get a consent prompt otherwise).
  const grant = interaction.grantId
    ? await provider.Grant.find(interaction.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope || 'openid'));
  const missingClaims = prompt.details?.missingOIDCClaims;
  if (missingClaims?.length) grant.addOIDCClaims(missingClaims);
  result.consent = { grantId: await grant.save() };

  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, {
    mergeWithLastSubmission: false,
  });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

async function interactionFor(ctx, uid) {
  let interaction;
  try {
    interaction = await provider.interactionDetails(ctx.req, ctx.res);
  } catch (e) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_interaction', error_description: `${e.message} (is the cookie jar kept?)` };
    return undefined;
  }
  if (interaction.uid !== uid) {
    ctx.status = 400;
    ctx.body = { error: 'invalid_interaction', error_description: 'interaction uid does not match the cookie' };
    return undefined;
  }
  return interaction;
}

const STATS = { discovery: 0, jwks: 0, token: 0, authorization: 0, userinfo: 0 };
let publishedKeys = ['main'];

provider.use(async (ctx, next) => {
  const { path, method } = ctx;

  // Discovery aliases: Entra's path, and the multi-tenant template variants.
  if (method === 'GET' && (path === DISCOVERY || DISCOVERY_ALIASES.has(path))) {
    STATS.discovery += 1;
    const template = DISCOVERY_ALIASES.get(path) ?? null;
    ctx.path = DISCOVERY;
    await next();
    ctx.path = path;
    if (ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      // Entra also advertises these.
      ctx.body.tenant_region_scope = 'EU';
      ctx.body.cloud_instance_name = 'microsoftonline.com';
      if (template) ctx.body.issuer = template;
    }
    return;
  }
  if (method === 'GET' && path === ROUTES.jwks) {
    STATS.jwks += 1;
    if (publishedKeys.length !== 1 || publishedKeys[0] !== 'main') {
      ctx.type = 'application/jwk-set+json; charset=utf-8';
      ctx.body = { keys: publishedKeys.map((k) => publicJwk(KEYS[k])) };
      return;
    }
  }
  if (path === ROUTES.token) STATS.token += 1;
  if (path === ROUTES.authorization) STATS.authorization += 1;
  if (path === ROUTES.userinfo) STATS.userinfo += 1;

  if (path === '/_test/stats' && method === 'GET') {
    ctx.body = STATS;
    return;
  }
  if (path === '/_test/accounts' && method === 'GET') {
    ctx.body = { tenant_id: TID, client_id: CLIENT_ID, issuer: ISSUER, accounts: ACCOUNTS.list };
    return;
  }
  if (path === '/_test/jwks' && method === 'PUT') {
    const keys = String(ctx.query.keys || '').split(',').filter(Boolean);
    if (!keys.length || keys.some((k) => !(k in KEYS))) {
      ctx.status = 400;
      ctx.body = { error: 'keys must be a comma-separated subset of main,rollover' };
      return;
    }
    publishedKeys = keys;
    ctx.body = { published: keys.map((k) => KEYS[k].kid) };
    return;
  }

  const m = /^\/interaction\/([A-Za-z0-9_-]+)(\/login)?$/.exec(path);
  if (m && method === 'GET') {
    const interaction = await interactionFor(ctx, m[1]);
    if (!interaction) return;
    if (m[2]) {
      const overrides = {};
      if (ctx.query.amr !== undefined) overrides.amr = String(ctx.query.amr).split(',').filter(Boolean);
      if (ctx.query.acr !== undefined) overrides.acr = String(ctx.query.acr);
      await finish(ctx, interaction, String(ctx.query.login_hint || ''), overrides);
      return;
    }
    const hint = interaction.params.login_hint;
    if (interaction.prompt.name !== 'login' || hint) {
      await finish(ctx, interaction, hint);
      return;
    }
    ctx.body = {
      uid: interaction.uid,
      prompt: interaction.prompt.name,
      login: `/interaction/${interaction.uid}/login?login_hint=`,
      accounts: [...ACCOUNTS.byLogin.keys()],
    };
    return;
  }
  await next();
});

provider.on('server_error', (ctx, err) => {
  process.stderr.write(`server_error: ${err.stack || err}\n`);
});

const server = provider.listen(PORT, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`oidc-provider (TEST ONLY) issuer ${ISSUER}\n`);
  process.stdout.write(`listening on http://127.0.0.1:${port}\n`);
  process.stdout.write(`discovery http://127.0.0.1:${port}/${TID}/v2.0${DISCOVERY}\n`);
});
server.on('error', (e) => die(`listen on 127.0.0.1:${PORT}: ${e.message}`));

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
