// OpenID Connect provider for the single sign-on tests (panva/oidc-provider with its built-in login form).
//
// Environment:
//   PORT                  port on 127.0.0.1 (the issuer is http://127.0.0.1:PORT)
//   REDIRECT_URI_PATTERN  regular expression the client's redirect URIs must match (the portal's
//                         /sso/callback/<provider id> on the test hosts)
//
// Accounts: the login typed into the form becomes the subject. "alice" is alice@client-a.example; a login
// containing "@" is its own (verified) email address; "unverified:<email>" has email_verified false; any
// other login is <login>@example.test.
//
// Besides the provider, two discovery documents exist for the portal's configuration checks:
//   /mismatch/.well-known/openid-configuration  names this server's issuer, not /mismatch
//   /not-json/.well-known/openid-configuration  answers HTML
import http from 'node:http';
import { Provider } from 'oidc-provider';

const port = Number(process.env.PORT || 0);
const host = '127.0.0.1';
const issuer = `http://${host}:${port}`;
const redirectPattern = new RegExp(process.env.REDIRECT_URI_PATTERN
  || '^http://(testserver|127\\.0\\.0\\.1:[0-9]+)/sso/callback/[0-9a-f-]{36}$');

const accounts = {
  alice: { email: 'alice@client-a.example', email_verified: true, name: 'Alice Martin' },
};

function claimsFor(sub) {
  if (accounts[sub]) return accounts[sub];
  if (sub.startsWith('unverified:')) {
    const email = sub.slice('unverified:'.length);
    return { email, email_verified: false, name: email.split('@')[0] };
  }
  if (sub.includes('@')) return { email: sub, email_verified: true, name: sub.split('@')[0] };
  return { email: `${sub}@example.test`, email_verified: true, name: sub };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'portal',
    client_secret: 'portal-secret',
    redirect_uris: ['http://testserver/sso/callback/00000000-0000-0000-0000-000000000000'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'email', 'profile'],
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['test-only-cookie-key'] },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub, ...claimsFor(sub) }; } };
  },
});

// Redirect URIs carry the portal's provider id, which each test creates; accept the test hosts' callbacks.
provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
  return redirectPattern.test(value);
};

const discovery = {
  issuer,
  authorization_endpoint: `${issuer}/auth`,
  token_endpoint: `${issuer}/token`,
  jwks_uri: `${issuer}/jwks`,
  userinfo_endpoint: `${issuer}/me`,
  response_types_supported: ['code'],
};

const handle = provider.callback();
const server = http.createServer((req, res) => {
  if (req.url === '/mismatch/.well-known/openid-configuration') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(discovery));
    return;
  }
  if (req.url === '/not-json/.well-known/openid-configuration') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>Welcome</title><p>Nothing to see here.</p>');
    return;
  }
  handle(req, res);
});

server.listen(port, host, () => {
  console.log(JSON.stringify({ ready: true, port: server.address().port, issuer }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
