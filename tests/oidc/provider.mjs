// The e2e suite's OpenID provider: panva's certified oidc-provider (8.8.1, pinned in
// package-lock.json) with its development login and consent pages, configured by one JSON
// document in OIDC_CONFIG (tests/e2e/support/oidc.rs writes it):
//
//   { "port": 0,                       // 0: any free port; the chosen one is printed
//     "alg": "RS256" | "ES256",        // the signing key made at start (a new one each start)
//     "accessTtl": 3600,               // access token lifetime, seconds
//     "idTokenTtl": 3600,              // id_token lifetime, seconds (negative: born expired)
//     "clients": [{ "id", "secret", "redirectUris": [..], "idTokenEmail": true }],
//     "accounts": { "<login>": { "email", "email_verified", "name" } } }
//
// Any login name signs in (any password); a login without an entry in "accounts" has no
// email. A client with "idTokenEmail": false gets id_tokens without email claims (userinfo
// still has them). Prints one line "listening <issuer>" on stdout once it accepts requests.
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_CONFIG || '{}');
const alg = config.alg || 'RS256';
const accounts = config.accounts || {};
const noEmailInIdToken = new Set(
  (config.clients || []).filter((c) => c.idTokenEmail === false).map((c) => c.id),
);

function signingKey() {
  const { privateKey } = alg === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${Date.now().toString(36)}` };
}

async function main() {
  const { createServer } = await import('node:http');
  const server = createServer();
  await new Promise((resolve) => server.listen(config.port || 0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, {
    clients: (config.clients || []).map((c) => ({
      client_id: c.id,
      client_secret: c.secret,
      redirect_uris: c.redirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      id_token_signed_response_alg: alg,
    })),
    jwks: { keys: [signingKey()] },
    cookies: { keys: ['oidc-test-provider-cookie-key'] },
    pkce: { methods: ['S256'], required: () => true },
    scopes: ['openid', 'offline_access', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: false,
    // Tokens expire when they say (the default tolerates 15 s of clock skew).
    clockTolerance: 0,
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    ttl: {
      AccessToken: config.accessTtl || 3600,
      AuthorizationCode: 60,
      // idTokenTtl may be negative: id_tokens that are expired when issued.
      IdToken: config.idTokenTtl === undefined ? 3600 : function idTokenTtl() {
        return config.idTokenTtl;
      },
      RefreshToken: 86400,
      Interaction: 600,
      Session: 3600,
      Grant: 86400,
    },
    async findAccount(ctx, sub) {
      const account = accounts[sub];
      return {
        accountId: sub,
        async claims(use) {
          const claims = { sub };
          if (!account) return claims;
          if (account.name) claims.name = account.name;
          const client = ctx.oidc && ctx.oidc.client && ctx.oidc.client.clientId;
          if (use === 'id_token' && noEmailInIdToken.has(client)) return claims;
          if (account.email) {
            claims.email = account.email;
            claims.email_verified = Boolean(account.email_verified);
          }
          return claims;
        },
      };
    },
  });
  // Quiet: the suite reads stdout for the "listening" line only.
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`listening ${issuer}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
