import { timingSafeEqual, createHash, createPublicKey, type KeyObject } from 'node:crypto';
import type { JwtHeader, JwtPayload } from 'jsonwebtoken';
import { Forbidden, Unauthorized } from './errors.js';
import type { RevocationCheck } from './revocation.js';

export {
  REVOCATION_BUCKET,
  RevocationList,
  RevocationWatcher,
  revocationKey,
  type Revocation,
  type RevocationCheck,
} from './revocation.js';

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
  /** Revoked tokens (a RevocationWatcher on the registry's bucket): checked on every verification, cached ones included. */
  revocations?: RevocationCheck;
  /** With jwksUri: after a burst of 5, unknown kids refetch the JWKS at most this often (default 1000 ms). */
  jwksMinRefetchMs?: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<Principal>;
  /** The principal of a token verified before and still cached (revocation checked; throws when revoked), without a promise; undefined otherwise. */
  verifyCached?(token: string): Principal | undefined;
}

/**
 * Keys from a JWKS, parsed once and looked up by kid. The whole set is fetched again when
 * it is over 10 minutes old, or for an unknown kid — a few at once (`burst`), then at
 * most one per `minRefetchMs`, however many unknown kids arrive. A flood of made-up kids
 * costs a map lookup each, and cannot use up a budget that a real new key (after a
 * rotation) then lacks for long: it is found within `minRefetchMs`.
 */
// jsonwebtoken and jwks-rsa (with jose) are loaded on the first token to check, not at
// start: a droplet idles without them (~5 MB RSS, ~0.2 s of start-up), and most requests
// are answered from the verified-token cache anyway.
let jwtModule: Promise<typeof import('jsonwebtoken')> | undefined;
const loadJwt = () => (jwtModule ??= import('jsonwebtoken').then((m) => m.default ?? m));
let jwksModule: Promise<typeof import('jwks-rsa')> | undefined;
const loadJwks = () => (jwksModule ??= import('jwks-rsa').then((m) => m.default ?? m));

export function jwksKeyResolver(jwksUri: string, opts: { minRefetchMs?: number; burst?: number; maxAgeMs?: number } = {}): KeyResolver {
  const minRefetchMs = opts.minRefetchMs ?? 1000;
  const burst = opts.burst ?? 5;
  const maxAgeMs = opts.maxAgeMs ?? 10 * 60_000;
  let client: ReturnType<typeof import('jwks-rsa')> | undefined;
  let keys = new Map<string, KeyObject>();
  let fetchedAt = Number.NEGATIVE_INFINITY;
  // A token bucket of refetches: `burst` deep, one more every minRefetchMs.
  let allowance = burst;
  let refilledAt = Date.now();
  let inflight: Promise<void> | undefined;
  const refresh = (): Promise<void> => {
    if (inflight) return inflight;
    const now = Date.now();
    if (minRefetchMs > 0) {
      const earned = Math.floor((now - refilledAt) / minRefetchMs);
      if (earned > 0) {
        allowance = Math.min(burst, allowance + earned);
        refilledAt += earned * minRefetchMs;
      }
    } else allowance = burst;
    if (allowance < 1) return Promise.resolve();
    allowance--;
    inflight = (async () => {
      try {
        client ??= (await loadJwks())({ jwksUri, cache: false, rateLimit: false, timeout: 5000 });
        const list = await client.getSigningKeys();
        const next = new Map<string, KeyObject>();
        for (const k of list) if (k.kid) next.set(k.kid, keys.get(k.kid) ?? createPublicKey(k.getPublicKey()));
        keys = next;
        fetchedAt = Date.now();
      } catch {
        // Keep the keys we have; the next refetch may succeed.
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
  return async (kid) => {
    if (!kid) throw new Unauthorized('token has no kid');
    if (Date.now() - fetchedAt > maxAgeMs) await refresh();
    let key = keys.get(kid);
    if (!key) {
      await refresh();
      key = keys.get(kid);
    }
    if (!key) throw new Unauthorized('token signed by an unknown key');
    return key;
  };
}

function constantTimeEqual(a: string, b: string): boolean {
  // Hash first so lengths match and the comparison leaks nothing about length.
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** How many of a token's last characters find it in the verified-token cache (192 bits of its signature). */
const KEY_CHARS = 32;

export function createTokenVerifier(opts: AuthOptions): TokenVerifier {
  const resolve = opts.keyResolver ?? (opts.jwksUri ? jwksKeyResolver(opts.jwksUri, { minRefetchMs: opts.jwksMinRefetchMs }) : undefined);
  type Claims = { jti?: string; droplet_id: string; sub: string; iat?: number };
  // Revocation is checked on every call, cache hits included: a revoked token is refused
  // as soon as the list knows of it, whatever the cache holds.
  const refuseRevoked = (claims: Claims) => {
    const reason = opts.revocations?.revokedReason(claims);
    if (reason) throw new Unauthorized(reason);
  };
  // Callers reuse a token for many requests; a full check costs ~100 µs of RSA and parsing.
  // Only fully verified tokens are kept, never past their exp, at most 60 s and 1000 of them.
  // They are found by their last characters (the end of the RSA signature) and then compared
  // whole: hashing a whole token (~1 kB, a new string on every request) as a map key cost more
  // than the rest of a cache hit.
  const verified = new Map<string, { token: string; principal: Principal; claims: Claims; until: number }>();
  const keyOf = (token: string) => (token.length > KEY_CHARS ? token.slice(-KEY_CHARS) : token);
  const remember = (token: string, principal: Principal, claims: Claims) => {
    if (verified.size >= 1000) verified.delete(verified.keys().next().value as string);
    verified.set(keyOf(token), { token, principal, claims, until: Math.min((principal.exp ?? 0) * 1000, Date.now() + 60_000) });
    return principal;
  };
  const cached = (token: string): Principal | undefined => {
    const key = keyOf(token);
    const hit = verified.get(key);
    if (!hit || hit.token !== token) return undefined;
    if (hit.until > Date.now()) {
      refuseRevoked(hit.claims);
      return hit.principal;
    }
    verified.delete(key);
    return undefined;
  };
  return {
    verifyCached: cached,
    async verify(token: string): Promise<Principal> {
      const hit = cached(token);
      if (hit) return hit;
      if (opts.allowSimpleToken && opts.apiToken && constantTimeEqual(token, opts.apiToken)) {
        return { sub: 'api-token', droplet_id: 'api-token', scopes: ['read', 'write', 'admin'], via: 'api_token' };
      }
      const jwt = await loadJwt();
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
      const droplet_id = String(payload.droplet_id ?? sub);
      const claims: Claims = {
        sub,
        droplet_id,
        jti: typeof payload.jti === 'string' ? payload.jti : undefined,
        iat: typeof payload.iat === 'number' ? payload.iat : undefined,
      };
      refuseRevoked(claims);
      return remember(token, { sub, droplet_id, scopes, via: 'jwt', exp: payload.exp }, claims);
    },
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  // The usual form, "Bearer " and a token without whitespace, answers the same without the match.
  if (header.length > 7 && header.startsWith('Bearer ')) {
    const token = header.slice(7);
    if (!/\s/.test(token)) return token;
  }
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

/**
 * The caller is droplet `name` by its registry identity (its token's `droplet_id`): the
 * droplet itself or one of its replicas (`<name>-<n>`, DROPLET_ID under MESH_REPLICAS).
 */
export function isDroplet(p: Principal | undefined, name: string): boolean {
  const id = p?.via === 'jwt' ? p.droplet_id : undefined;
  if (!id) return false;
  return id === name || (id.startsWith(`${name}-`) && /^[a-z0-9]{1,16}$/.test(id.slice(name.length + 1)));
}

/**
 * A droplet's token carries only read and write, so an action reserved to certain droplets
 * (creating machines, handing out keys) is allowed by who asks: one of `droplets` by
 * identity, or a caller with the admin scope. `doing` completes "only X may ...".
 */
export function assertDropletOrAdmin(p: Principal | undefined, droplets: readonly string[], doing: string): Principal {
  if (!p) throw new Unauthorized();
  if (hasScope(p, 'admin') || droplets.some((d) => isDroplet(p, d))) return p;
  throw new Forbidden(`only ${droplets.join(' or ')} (or the 'admin' scope) may ${doing}`, { required_scope: 'admin', granted: p.scopes });
}
