import { timingSafeEqual, createHash, createPublicKey, type KeyObject } from 'node:crypto';
import jwt, { type JwtHeader, type JwtPayload } from 'jsonwebtoken';
import jwksRsa from 'jwks-rsa';
import { Forbidden, Unauthorized } from './errors.js';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  sub: string;
  droplet_id: string;
  scopes: Scope[];
  /** How the caller proved itself. */
  via: 'jwt' | 'api_token';
  exp?: number;
}

/** Returns the PEM public key for a `kid`, or throws. */
export type KeyResolver = (kid: string | undefined) => Promise<string | KeyObject>;

export interface AuthOptions {
  issuer: string;
  audience: string;
  jwksUri?: string;
  /** Used instead of fetching a JWKS (the registry verifies with its own keys). */
  keyResolver?: KeyResolver;
  allowSimpleToken?: boolean;
  apiToken?: string;
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
}

/** jwks-rsa client: keys cached, an unknown `kid` triggers a refetch limited to 10 a minute. */
export function jwksKeyResolver(jwksUri: string): KeyResolver {
  const client = jwksRsa({ jwksUri, cache: true, cacheMaxAge: 10 * 60_000, rateLimit: true, jwksRequestsPerMinute: 10, timeout: 5000 });
  // Parsing a PEM costs ~200 µs: parse each key once (a handful of keys, so no eviction).
  const parsed = new Map<string, KeyObject>();
  return async (kid) => {
    if (!kid) throw new Unauthorized('token has no kid');
    try {
      const pem = (await client.getSigningKey(kid)).getPublicKey();
      let key = parsed.get(pem);
      if (!key) parsed.set(pem, (key = createPublicKey(pem)));
      return key;
    } catch {
      throw new Unauthorized('token signed by an unknown key');
    }
  };
}

function constantTimeEqual(a: string, b: string): boolean {
  // Hash first so lengths match and the comparison leaks nothing about length.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

export function createTokenVerifier(opts: AuthOptions): TokenVerifier {
  const resolve = opts.keyResolver ?? (opts.jwksUri ? jwksKeyResolver(opts.jwksUri) : undefined);
  // Callers reuse a token for many requests; a full check costs ~100 µs of RSA and parsing.
  // Only fully verified tokens are kept, never past their exp, at most 60 s and 1000 of them.
  const verified = new Map<string, { principal: Principal; until: number }>();
  const remember = (token: string, principal: Principal) => {
    if (verified.size >= 1000) verified.delete(verified.keys().next().value as string);
    verified.set(token, { principal, until: Math.min((principal.exp ?? 0) * 1000, Date.now() + 60_000) });
    return principal;
  };
  return {
    async verify(token: string): Promise<Principal> {
      const hit = verified.get(token);
      if (hit) {
        if (hit.until > Date.now()) return hit.principal;
        verified.delete(token);
      }
      if (opts.allowSimpleToken && opts.apiToken && constantTimeEqual(token, opts.apiToken)) {
        return { sub: 'api-token', droplet_id: 'api-token', scopes: ['read', 'write', 'admin'], via: 'api_token' };
      }
      const decoded = jwt.decode(token, { complete: true });
      if (!decoded || typeof decoded === 'string') throw new Unauthorized('malformed token');
      const header = decoded.header as JwtHeader;
      if (header.alg !== 'RS256') throw new Unauthorized('token algorithm must be RS256');
      if (!resolve) throw new Unauthorized('no key source configured');
      const key = await resolve(header.kid);
      let payload: JwtPayload;
      try {
        payload = jwt.verify(token, key, { algorithms: ['RS256'], issuer: opts.issuer, audience: opts.audience }) as JwtPayload;
      } catch (err) {
        const reason = err instanceof jwt.TokenExpiredError ? 'token expired' : `invalid token: ${(err as Error).message}`;
        throw new Unauthorized(reason);
      }
      // jsonwebtoken checks exp only when present; a token that never expires outlives key rotation.
      if (typeof payload.exp !== 'number') throw new Unauthorized('token has no expiry');
      const scopes = Array.isArray(payload.scopes)
        ? payload.scopes.filter((s): s is Scope => (SCOPES as readonly string[]).includes(s))
        : [];
      const sub = String(payload.sub ?? payload.droplet_id ?? '');
      if (!sub) throw new Unauthorized('token has no subject');
      return remember(token, { sub, droplet_id: String(payload.droplet_id ?? sub), scopes, via: 'jwt', exp: payload.exp });
    },
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  return m?.[1];
}

/** admin implies write implies read. */
export function hasScope(p: Principal, scope: Scope): boolean {
  if (p.scopes.includes('admin')) return true;
  if (scope === 'read') return p.scopes.includes('read') || p.scopes.includes('write');
  return p.scopes.includes(scope);
}

export function assertScope(p: Principal | undefined, scope: Scope): Principal {
  if (!p) throw new Unauthorized();
  if (!hasScope(p, scope)) throw new Forbidden(`this action needs the '${scope}' scope`, { required_scope: scope, granted: p.scopes });
  return p;
}
