// A real OpenID Provider for the SSO tests: node-oidc-provider (an OpenID-certified OP) on a loopback port.
//
// Configured by the JSON in $OP_CONFIG: {"clients": [...], "accounts": {"<login>": {<claims>}}}, and
// $OIDC_PROVIDER: the installed package's directory (ES modules ignore NODE_PATH).
// Its development interactions are on: any password signs in as the account named by the login field,
// and a consent page follows. Prints "issuer <url>" once listening; exits when stdin closes.
import http from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(join(process.env.OIDC_PROVIDER, 'lib', 'index.js')).href);

const config = JSON.parse(process.env.OP_CONFIG);

async function findAccount(ctx, id) {
  const claims = config.accounts[id];
  if (!claims) return undefined;
  return { accountId: id, async claims() { return { sub: id, ...claims }; } };
}

const host = http.createServer();
await new Promise((resolve) => { host.listen(0, '127.0.0.1', resolve); });
const issuer = `http://127.0.0.1:${host.address().port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  findAccount,
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The email claims go into the ID token itself (not only to userinfo), as Dex, Keycloak and Google do.
  conformIdTokenClaims: false,
  cookies: { keys: ['testgate-sso-tests-only'] },
  features: { devInteractions: { enabled: true } },
  pkce: { required: () => true },
});
host.on('request', provider.callback());
process.stdout.write(`issuer ${issuer}\n`);
process.stdin.resume();
process.stdin.on('end', () => { host.close(); process.exit(0); });
