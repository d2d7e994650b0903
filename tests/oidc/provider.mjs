// A real OpenID Provider for podgate's sign-in tests: the certified `oidc-provider`
// package, on a loopback http issuer, with its own plain login and consent pages.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: {"port": N, "issuer": "http://127.0.0.1:N", "clients": [...oidc-provider
// client metadata...], "keys": [private JWKs], "users_file": "users.json",
// "conform_id_token_claims": false}. users.json maps a login to {"password", "claims"}
// and is read again at every look-up, so a test can change a user's groups mid-run.
// With "github": true it also plays GitHub (the only fake part, and only of GitHub's REST
// API): its OAuth endpoints sit at GitHub's paths (/login/oauth/authorize and
// /login/oauth/access_token, still oidc-provider's own), and /api/v3/user, /user/orgs and
// /user/teams answer for the account whose access token oidc-provider itself issued,
// from the account's "github" entry ({login, email, orgs: [...], teams: [[org, slug]]}).
// Prints "ready ISSUER" once it listens. Its pages load nothing from elsewhere (the
// default development pages would fetch web fonts), so a browser stays on loopback.
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));

function users() {
  return JSON.parse(readFileSync(config.users_file, 'utf8'));
}

function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${title}</title></head>`
    + `<body><h1>${title}</h1>${body}</body></html>`;
}

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: { keys: config.keys },
  cookies: { keys: ['podgate-test-provider-cookie-key'] },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name', 'nickname'],
    email: ['email', 'email_verified', 'hd'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups', 'read:user', 'user:email', 'read:org'],
  routes: config.github ? { authorization: '/login/oauth/authorize', token: '/login/oauth/access_token' } : undefined,
  conformIdTokenClaims: Boolean(config.conform_id_token_claims),
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = page('Sign out of the provider', `${form}<button autofocus type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.body = page('Signed out of the provider', '<p>You are signed out.</p>');
      },
    },
  },
  // Refresh tokens for every client allowed the grant, without offline_access consent.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  renderError: async (ctx, out) => {
    ctx.type = 'html';
    ctx.body = page('Provider error', `<pre>${escape(JSON.stringify(out))}</pre>`);
  },
  ttl: config.ttl || undefined,
  findAccount: async (ctx, sub) => {
    const user = users()[sub];
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ sub, ...user.claims }) };
  },
});

// The interaction pages: a login form that checks the users file's password, then consent.
provider.use(async (ctx, next) => {
  const match = /^\/interaction\/([^/]+)(\/login|\/confirm)?$/.exec(ctx.path);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const action = match[2];
  if (ctx.method === 'GET' && !action) {
    ctx.type = 'html';
    if (details.prompt.name === 'login') {
      ctx.body = page('Provider sign-in', `<form method="post" action="/interaction/${details.uid}/login">`
        + '<input id="login" name="login" type="text" autofocus required>'
        + '<input id="password" name="password" type="password" required>'
        + '<button id="signin" type="submit">Sign-in</button></form>');
    } else {
      ctx.body = page('Provider consent', `<form method="post" action="/interaction/${details.uid}/confirm">`
        + '<button id="continue" type="submit" autofocus>Continue</button></form>');
    }
    return undefined;
  }
  if (ctx.method === 'POST' && action === '/login') {
    const form = await readForm(ctx.req);
    const user = users()[form.get('login')];
    if (!user || user.password !== form.get('password')) {
      ctx.type = 'html';
      ctx.status = 403;
      ctx.body = page('Provider sign-in', '<p id="wrong">Wrong login or password.</p>');
      return undefined;
    }
    const result = { login: { accountId: form.get('login') } };
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false }));
    return undefined;
  }
  if (ctx.method === 'POST' && action === '/confirm') {
    await readForm(ctx.req);
    const { prompt: { details: missing }, params, session } = details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    ctx.status = 303;
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true }));
    return undefined;
  }
  return next();
});

// GitHub's REST API, for the github preset: who the (real) access token belongs to.
provider.use(async (ctx, next) => {
  const match = /^\/api\/v3(\/user(?:\/orgs|\/teams)?)$/.exec(ctx.path);
  if (!config.github || !match) return next();
  const bearer = /^Bearer (.+)$/.exec(ctx.get('authorization') || '');
  const token = bearer && await provider.AccessToken.find(bearer[1]);
  const account = token && users()[token.accountId];
  if (!account) {
    ctx.status = 401;
    ctx.body = { message: 'Bad credentials' };
    return undefined;
  }
  const github = account.github || {};
  if (match[1] === '/user') {
    ctx.body = { login: github.login, id: 1, email: github.email || null };
  } else if (match[1] === '/user/orgs') {
    ctx.body = (github.orgs || []).map((login) => ({ login }));
  } else {
    ctx.body = (github.teams || []).map(([org, slug]) => ({ slug, organization: { login: org } }));
  }
  return undefined;
});

const server = http.createServer(provider.callback());
server.listen(config.port, '127.0.0.1', () => {
  console.log(`ready ${config.issuer}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
