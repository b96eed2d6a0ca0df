// The OpenID provider of the end-to-end tests: npm's certified `oidc-provider` with its
// own development login and consent pages, started by tests/harness/oidc.rs as
//
//   node provider.mjs <settings.json>
//
// settings.json: { "dir": folder for the key files, "clients": [client metadata...],
// "accounts": { "<login>": { claims... } } }. It listens on a random loopback port and
// prints one line, `issuer <url>`, once it serves. It writes two PEM files into `dir`:
// `signing-key.pem`, the key it signs ID and logout tokens with (published in its JWKS as
// kid `test-key-1`), and `stranger-key.pem`, a key it never publishes; the tests sign
// forged tokens with them.
//
// Optional settings make a misbehaving provider for the negative tests (each a real
// answer of this provider, not a canned one):
//   "clockOffsetSeconds": n   its clock runs n seconds off (negative: slow), so with
//                             "idTokenTtl" shorter than -n its ID tokens are already expired
//   "idTokenTtl": seconds     how long its ID tokens are valid (default one hour)
// It appends `{"sub", "sid"}` of each ID token its token endpoint issues to
// `dir/issued.jsonl` (the tests need the provider's session ids).
//
//   "reissueIdToken": { "claims": {...}, "alg": "RS256" | "HS256" | "none",
//                       "key": "signing" | "stranger", "kid": "..." }
//                             the token endpoint's ID token is signed again (RS256 with
//                             `key`, HS256 with the client secret, or not at all) under
//                             `kid`, its claims replaced by `claims` (another audience,
//                             another issuer, a key it does not publish)

import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function rsaKey(file) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(`${settings.dir}/${file}`, privateKey.export({ format: 'pem', type: 'pkcs8' }));
  return privateKey;
}

const signing = rsaKey('signing-key.pem');
const stranger = rsaKey('stranger-key.pem');

if (settings.clockOffsetSeconds) {
  const realNow = Date.now;
  Date.now = () => realNow() + settings.clockOffsetSeconds * 1000;
}

// `jwt` signed again as settings.reissueIdToken says.
function reissue(jwt) {
  const {
    claims = {}, alg = 'RS256', key = 'signing', kid = 'test-key-1',
  } = settings.reissueIdToken;
  const payload = { ...JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url')), ...claims };
  const header = { alg, typ: 'JWT', kid };
  const input = [header, payload]
    .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
    .join('.');
  let signature;
  if (alg === 'none') {
    signature = Buffer.alloc(0);
  } else if (alg === 'HS256') {
    signature = createHmac('sha256', settings.clients[0].client_secret).update(input).digest();
  } else {
    signature = sign('sha256', Buffer.from(input), key === 'stranger' ? stranger : signing);
  }
  return `${input}.${signature.toString('base64url')}`;
}

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: settings.clients,
    jwks: {
      keys: [{ ...signing.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' }],
    },
    async findAccount(ctx, id) {
      const claims = settings.accounts[id];
      if (!claims) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...claims }) };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['preferred_username', 'name'],
      groups: ['groups'],
    },
    scopes: ['openid', 'email', 'profile', 'groups'],
    // The user's claims in the ID token itself (the relay reads no userinfo).
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    cookies: { keys: ['opsdeck-test-provider'] },
    ...(settings.idTokenTtl ? { ttl: { IdToken: settings.idTokenTtl } } : {}),
    // The relay under test listens on loopback, which the provider's SSRF guard refuses
    // by default: this provider only ever calls the test's own relay.
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route === 'token' && ctx.body?.id_token) {
      const { sub, sid } = JSON.parse(Buffer.from(ctx.body.id_token.split('.')[1], 'base64url'));
      appendFileSync(`${settings.dir}/issued.jsonl`, `${JSON.stringify({ sub, sid })}\n`);
      if (settings.reissueIdToken) {
        ctx.body = { ...ctx.body, id_token: reissue(ctx.body.id_token) };
      }
    }
  });
  provider.on('backchannel.error', (ctx, error) => {
    console.error(`back-channel logout failed: ${error.message}`);
  });
  provider.on('server_error', (ctx, error) => {
    console.error(`provider error: ${error.stack}`);
  });
  server.on('request', provider.callback());
  console.log(`issuer ${issuer}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
