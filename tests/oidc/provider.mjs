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

import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const settings = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function rsaKey(file) {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(`${settings.dir}/${file}`, privateKey.export({ format: 'pem', type: 'pkcs8' }));
  return privateKey;
}

const signing = rsaKey('signing-key.pem');
rsaKey('stranger-key.pem');

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
    // The relay under test listens on loopback, which the provider's SSRF guard refuses
    // by default: this provider only ever calls the test's own relay.
    fetch: (url, options) => {
      delete options.dispatcher;
      return globalThis.fetch(url, options);
    },
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
