// node-oidc-provider set up as Gatehouse is in bench/run, so that the two are measured alike.
//
//   node peer.mjs PORT CLIENTS_JSON
//
// CLIENTS_JSON names the two confidential clients' ids and secrets:
// {"cc": {"id": ..., "secret": ...}, "refresh": {"id": ..., "secret": ...}}.
//
// - the default in-memory adapter (nothing on disk), an ES256 key generated at start;
// - client_credentials for https://api.example.com through resource indicators, issuing JWT
//   access tokens signed with ES256, valid 900 s, as Gatehouse's;
// - refresh tokens rotated at every use (rotateRefreshToken: true);
// - POST /bench/seed: a new grant for a user of the refresh client and its first refresh token,
//   made through the provider's own models, since the provider has no password grant and driving
//   its sign-in pages would need an interaction UI. Answers {"refresh_token": ...}.
//
// Prints "listening" once the port is open.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const AUDIENCE = 'https://api.example.com';
const SCOPE = 'api:read';

const port = Number(process.argv[2]);
const clients = JSON.parse(process.argv[3]);
if (!port || !clients?.cc?.id || !clients?.refresh?.id) {
  console.error('usage: node peer.mjs PORT CLIENTS_JSON');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'ES256', use: 'sig' };

const resourceServer = {
  scope: SCOPE,
  audience: AUDIENCE,
  accessTokenTTL: 900,
  accessTokenFormat: 'jwt',
  jwt: { sign: { alg: 'ES256' } },
};

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clients.cc.id,
      client_secret: clients.cc.secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPE,
    },
    {
      client_id: clients.refresh.id,
      client_secret: clients.refresh.secret,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['https://app.example.com/callback'],
    },
  ],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  scopes: ['openid', 'offline_access', SCOPE],
  routes: { jwks: '/.well-known/jwks.json' },
  rotateRefreshToken: true,
  cookies: { keys: [randomUUID()] },
  findAccount: (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => AUDIENCE,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => {
        if (resource !== AUDIENCE) {
          throw new Provider.errors.InvalidTarget();
        }
        return resourceServer;
      },
    },
  },
  ttl: {
    AccessToken: 900,
    ClientCredentials: 900,
    // Gatehouse's idle timeout of a refresh token; its grants last 7 days.
    RefreshToken: 86400,
    Grant: 604800,
    Session: 28800,
    Interaction: 600,
    AuthorizationCode: 60,
    IdToken: 300,
  },
});
provider.on('server_error', (_ctx, err) => console.error('server_error', err));

let seeded = 0;

/** A grant of SCOPE at AUDIENCE for a new user of the refresh client, and its refresh token. */
async function seed() {
  seeded += 1;
  const accountId = `bench-user-${seeded}`;
  const client = await provider.Client.find(clients.refresh.id);
  const grant = new provider.Grant({ accountId, clientId: client.clientId });
  grant.addOIDCScope('openid offline_access');
  grant.addResourceScope(AUDIENCE, SCOPE);
  const grantId = await grant.save();
  const token = new provider.RefreshToken({
    accountId,
    client,
    grantId,
    gty: 'authorization_code',
    scope: SCOPE,
    resource: AUDIENCE,
    authTime: Math.floor(Date.now() / 1000),
    expiresWithSession: false,
  });
  return token.save();
}

const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/bench/seed') {
    req.resume();
    seed().then(
      (refreshToken) => {
        const body = JSON.stringify({ refresh_token: refreshToken });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
      (err) => {
        console.error('seeding failed', err);
        res.writeHead(500, { 'content-length': 0 });
        res.end();
      },
    );
    return;
  }
  handle(req, res);
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1', () => console.log('listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
