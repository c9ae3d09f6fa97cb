import type { Request, Response } from 'express';
import { z } from 'zod';
import {
  createTokenVerifier,
  DependencyUnavailable,
  Forbidden,
  InvalidRequest,
  RateLimited,
  Unauthorized,
  UdcError,
  type Api,
  type ErrorCode,
  type TokenVerifier,
} from '@droplet-mesh/udc-kit';
import type { ConsoleConfig } from './config.js';
import { reason } from './discovery.js';
import { sameSecret, type Session, type SessionStore } from './sessions.js';

export const COOKIE = 'mesh_console';
/** The name when the cookie is Secure: the __Host- prefix also pins it to this host and path /. */
export const SECURE_COOKIE = `__Host-${COOKIE}`;

export function readCookie(req: Request): string | undefined {
  const header = req.header('cookie');
  if (!header) return undefined;
  let plain: string | undefined;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const name = part.slice(0, i).trim();
    const value = part.slice(i + 1).trim();
    if (name === SECURE_COOKIE && value) return value;
    if (name === COOKIE && value) plain = value;
  }
  return plain;
}

function secureRequest(req: Request, mode: ConsoleConfig['CONSOLE_SECURE_COOKIES']): boolean {
  if (mode === 'true') return true;
  if (mode === 'false') return false;
  // req.secure honours X-Forwarded-Proto from a proxy on loopback (udc-kit trusts only that).
  return req.secure;
}

function setSessionCookie(res: Response, value: string, maxAgeS: number, secure: boolean): void {
  const attrs = `Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeS))}`;
  res.append('Set-Cookie', secure ? `${SECURE_COOKIE}=${value}; ${attrs}; Secure` : `${COOKIE}=${value}; ${attrs}`);
}

function clearSessionCookies(res: Response, secure: boolean): void {
  res.append('Set-Cookie', `${COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
  if (secure) res.append('Set-Cookie', `${SECURE_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure`);
}

/** A state-changing request must come from this console's own pages. */
export function assertSameOrigin(req: Request): void {
  if (req.header('sec-fetch-site') === 'cross-site') throw new Forbidden('cross-site requests are refused');
  const origin = req.header('origin');
  if (origin === undefined) return;
  let host: string | undefined;
  try {
    host = new URL(origin).host;
  } catch {
    host = undefined;
  }
  if (!host || host !== req.header('host')) throw new Forbidden('the request comes from another origin');
}

export function assertCsrf(req: Request, session: Session): void {
  assertSameOrigin(req);
  const given = req.header('x-csrf-token');
  if (!given || !sameSecret(given, session.csrf))
    throw new Forbidden('missing or wrong CSRF token: send the X-CSRF-Token header from GET /session', { csrf: 'invalid' });
}

export const isStateChanging = (req: Request) => !['GET', 'HEAD', 'OPTIONS'].includes(req.method);

const signInBody = z
  .strictObject({
    admin_key: z.string().min(1).max(1024).optional(),
    token: z.string().min(1).max(16_384).optional(),
  })
  .refine((b) => (b.admin_key === undefined) !== (b.token === undefined), {
    message: 'give either admin_key or token',
    path: ['admin_key'],
  });

interface TokenAnswer {
  token: string;
  expires_at: string;
  scopes: string[];
}

/** Failed sign-ins per client address in a one-minute window. */
class FailureWindow {
  private readonly counts = new Map<string, { start: number; n: number }>();
  constructor(private readonly now: () => number) {}
  blocked(ip: string, limit: number): number | undefined {
    const c = this.counts.get(ip);
    if (!c) return undefined;
    const left = c.start + 60_000 - this.now();
    if (left <= 0) {
      this.counts.delete(ip);
      return undefined;
    }
    return c.n >= limit ? left : undefined;
  }
  fail(ip: string): void {
    const now = this.now();
    const c = this.counts.get(ip);
    if (!c || c.start + 60_000 <= now) this.counts.set(ip, { start: now, n: 1 });
    else c.n++;
    if (this.counts.size > 10_000) this.counts.delete(this.counts.keys().next().value as string);
  }
}

export interface SessionRouteDeps {
  sessions: SessionStore;
  config: () => ConsoleConfig;
  now: () => number;
}

/** The session of this request, or 401 in the envelope. */
export async function requireSession(req: Request, sessions: SessionStore): Promise<Session> {
  const s = await sessions.get(readCookie(req));
  if (!s) throw new Unauthorized('sign in first: no console session, or it expired', { console_session: 'missing' });
  return s;
}

export function registerSessionRoutes(api: Api, deps: SessionRouteDeps): void {
  const { sessions } = deps;
  const failures = new FailureWindow(deps.now);
  let verifier: { key: string; v: TokenVerifier } | undefined;
  const tokenVerifier = () => {
    const c = deps.config();
    const jwksUri = c.JWKS_URL ?? `${c.REGISTRY_URL.replace(/\/+$/, '')}/.well-known/jwks.json`;
    const key = `${jwksUri} ${c.JWT_ISSUER} ${c.JWT_AUDIENCE}`;
    if (verifier?.key !== key) verifier = { key, v: createTokenVerifier({ issuer: c.JWT_ISSUER, audience: c.JWT_AUDIENCE, jwksUri }) };
    return verifier.v;
  };

  const exchangeAdminKey = async (adminKey: string, req: Request): Promise<TokenAnswer> => {
    const base = deps.config().REGISTRY_URL.replace(/\/+$/, '');
    let res: globalThis.Response;
    try {
      res = await fetch(`${base}/auth/token?droplet_id=operator`, {
        method: 'POST',
        headers: { 'x-registry-key': adminKey, accept: 'application/json', 'x-forwarded-for': req.ip ?? '' },
        signal: AbortSignal.timeout(10_000),
      });
    } catch (err) {
      throw new DependencyUnavailable(`the registry is unreachable: ${reason(err)}`, { droplet: 'registry' });
    }
    const body = (await res.json().catch(() => undefined)) as (TokenAnswer & { error?: { code: string; message: string } }) | undefined;
    if (res.ok && body?.token) return body;
    if (res.status === 401 || res.status === 403) throw new Unauthorized('the registry refused this admin key');
    const retry = res.headers.get('retry-after');
    if (res.status === 429) throw new RateLimited(body?.error?.message ?? 'too many sign-in attempts', Number(retry ?? 60));
    throw new UdcError(
      res.status >= 400 ? res.status : 502,
      (body?.error?.code as ErrorCode) ?? 'DEPENDENCY_UNAVAILABLE',
      `the registry did not issue a token: ${body?.error?.message ?? `HTTP ${res.status}`}`,
    );
  };

  api.get(
    '/session',
    { scope: 'public', summary: 'The signed-in session (subject, scopes, expiry, CSRF token), or 401' },
    async ({ req, res }) => {
      res.setHeader('Cache-Control', 'no-store');
      return sessions.view(await requireSession(req, sessions));
    },
  );

  api.post(
    '/session',
    {
      scope: 'public',
      summary: 'Sign in: exchange the admin key (or an operator token) for a session cookie; the token stays on the server',
      status: 201,
    },
    async ({ req, res }) => {
      assertSameOrigin(req);
      res.setHeader('Cache-Control', 'no-store');
      const config = deps.config();
      const ip = req.ip ?? 'unknown';
      const wait = failures.blocked(ip, config.CONSOLE_SIGNIN_FAILURES_PER_MIN);
      if (wait !== undefined) throw new RateLimited('too many failed sign-ins from this address; retry later', wait / 1000);
      if (!req.is('application/json')) throw new InvalidRequest('send the credentials as application/json');
      const parsed = signInBody.safeParse(req.body ?? {});
      if (!parsed.success)
        throw new InvalidRequest('invalid body', {
          fields: parsed.error.issues.map((i) => ({ path: i.path.join('.') || '(root)', message: i.message })),
        });
      let answer: TokenAnswer;
      try {
        if (parsed.data.admin_key !== undefined) {
          answer = await exchangeAdminKey(parsed.data.admin_key, req);
        } else {
          const token = parsed.data.token!;
          const p = await tokenVerifier().verify(token);
          if (!p.exp) throw new Unauthorized('the token has no expiry');
          answer = { token, expires_at: new Date(p.exp * 1000).toISOString(), scopes: p.scopes };
        }
      } catch (err) {
        if (err instanceof UdcError && err.code === 'UNAUTHORIZED') {
          failures.fail(ip);
          req.log.warn({ action: 'sign-in', result: 'refused', ip }, 'console sign-in refused');
        }
        throw err;
      }
      const expiresAt = Date.parse(answer.expires_at);
      if (!(expiresAt > deps.now())) throw new Unauthorized('the token has already expired');
      const subject = subjectOf(answer.token) ?? 'operator';
      const { cookie, session } = await sessions.create({ token: answer.token, subject, scopes: answer.scopes, expiresAt });
      setSessionCookie(res, cookie, (expiresAt - deps.now()) / 1000, secureRequest(req, config.CONSOLE_SECURE_COOKIES));
      req.log.info({ action: 'sign-in', result: 'ok', subject, expires_at: answer.expires_at }, 'console session opened');
      return sessions.view(session);
    },
  );

  api.delete('/session', { scope: 'public', summary: 'Sign out everywhere (X-CSRF-Token required)' }, async ({ req, res }) => {
    const s = await requireSession(req, sessions);
    assertCsrf(req, s);
    await sessions.destroy(readCookie(req));
    clearSessionCookies(res, secureRequest(req, deps.config().CONSOLE_SECURE_COOKIES));
    res.setHeader('Cache-Control', 'no-store');
    req.log.info({ action: 'sign-out', subject: s.subject }, 'console session closed');
    return undefined;
  });
}

/** The `sub` of a JWT (already verified or just issued to us): for display only. */
function subjectOf(token: string): string | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof payload.sub === 'string' ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}
