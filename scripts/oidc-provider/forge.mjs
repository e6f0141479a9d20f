// TEST-ONLY token forger: prints one JWT (compact JWS) on stdout, for the relying-party
// rejection tests. Uses the committed test keys in keys/ (see keys/README.md).
//
//   node forge.mjs '<json claims>' [--mode=MODE] [--kid=KID] [--header='<json>'] [--no-defaults]
//
// Claims: unless --no-defaults, the JSON is merged over Entra-shaped defaults for the
// first account of accounts.json (or the one named by "login" in the JSON, which is then
// dropped): iss, aud (client id), tid, oid, sub, ver "2.0", name, preferred_username,
// email, groups, amr, iat = nbf = now, exp = now + 3600. A claim set to null is removed
// (e.g. {"nonce": null} or {"nbf": null}). Numbers are kept as given: compute iat/exp
// yourself for "expired" or "future" tokens.
//
// Modes:
//   real         (default) RS256 with the OP's real key (keys/test-signing-key): a token
//                the OP could have issued, with whatever claims you like
//   other-key    RS256 with keys/attacker-key, which carries the SAME kid as the real key
//   rollover     RS256 with keys/rollover-key (kid published only after
//                PUT /_test/jwks?keys=main,rollover)
//   none         {"alg":"none"}, empty signature ("header.payload.")
//   hs256-pem    HS256 keyed with the real public key as SPKI PEM text (as published
//                by an RSA-to-PEM conversion, with the trailing newline)
//   hs256-jwk    HS256 keyed with the real public JWK's JSON text exactly as the JWKS
//                endpoint serves it ({"kty","use","kid","alg","e","n"}, no spaces)
//   hs256-n      HS256 keyed with the raw modulus bytes of the real key
//
// Environment: PROCUHELP_OIDC_TENANT_ID, PROCUHELP_OIDC_ISSUER, PROCUHELP_OIDC_CLIENT_ID,
// PROCUHELP_OIDC_ACCOUNTS_FILE, PROCUHELP_OIDC_SIGNING_KEY_FILE (as for provider.mjs).
import { createPublicKey } from 'node:crypto';

import { importJWK, SignJWT, UnsecuredJWT, base64url } from 'jose';

import {
  accountClaims, clientId, die, issuer, loadAccounts, loadKey, publicJwk, tenantId,
} from './common.mjs';

const MODES = ['real', 'other-key', 'rollover', 'none', 'hs256-pem', 'hs256-jwk', 'hs256-n'];

function usage() {
  die(`usage: node forge.mjs '<json claims>' [--mode=${MODES.join('|')}] [--kid=KID] [--header='<json>'] [--no-defaults]`);
}

const args = process.argv.slice(2);
let claimsArg;
let mode = 'real';
let kid;
let extraHeader = {};
let defaults = true;
for (const a of args) {
  if (a.startsWith('--mode=')) mode = a.slice(7);
  else if (a.startsWith('--kid=')) kid = a.slice(6);
  else if (a.startsWith('--header=')) extraHeader = JSON.parse(a.slice(9));
  else if (a === '--no-defaults') defaults = false;
  else if (a === '--help' || a === '-h') usage();
  else if (claimsArg === undefined) claimsArg = a;
  else usage();
}
if (!MODES.includes(mode)) usage();

let given;
try {
  given = JSON.parse(claimsArg ?? '{}');
} catch (e) {
  die(`claims are not JSON: ${e.message}`);
}
if (given === null || typeof given !== 'object' || Array.isArray(given)) die('claims must be a JSON object');

let claims = {};
if (defaults) {
  const accounts = loadAccounts();
  const login = given.login ?? accounts.list[0].login;
  const account = accounts.byLogin.get(login);
  if (!account) die(`no account with login ${JSON.stringify(login)} in ${accounts.file}`);
  delete given.login;
  const now = Math.floor(Date.now() / 1000);
  claims = {
    iss: issuer(),
    aud: clientId(),
    iat: now,
    nbf: now,
    exp: now + 3600,
    ...accountClaims(account, tenantId()),
    ...(account.amr ? { amr: account.amr } : {}),
  };
}
for (const [k, v] of Object.entries(given)) {
  if (v === null) delete claims[k];
  else claims[k] = v;
}

const real = loadKey('main');
let token;
switch (mode) {
  case 'real':
  case 'other-key':
  case 'rollover': {
    const jwk = loadKey(mode === 'real' ? 'main' : mode === 'other-key' ? 'attacker' : 'rollover');
    const key = await importJWK(jwk, 'RS256');
    token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: kid ?? jwk.kid, ...extraHeader })
      .sign(key);
    break;
  }
  case 'none':
    token = new UnsecuredJWT(claims).encode();
    if (kid || Object.keys(extraHeader).length) {
      // UnsecuredJWT fixes the header to {"alg":"none"}; rebuild it with the extras.
      const header = { alg: 'none', typ: 'JWT', ...(kid ? { kid } : {}), ...extraHeader };
      token = `${base64url.encode(JSON.stringify(header))}.${token.split('.')[1]}.`;
    }
    break;
  case 'hs256-pem':
  case 'hs256-jwk':
  case 'hs256-n': {
    let secret;
    if (mode === 'hs256-pem') {
      secret = createPublicKey({ key: real, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
    } else if (mode === 'hs256-jwk') {
      secret = JSON.stringify(publicJwk(real));
    } else {
      secret = Buffer.from(real.n, 'base64url');
    }
    token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: kid ?? real.kid, ...extraHeader })
      .sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : new Uint8Array(secret));
    break;
  }
  default:
    usage();
}
process.stdout.write(`${token}\n`);
