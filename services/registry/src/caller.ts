import type { Request } from 'express';
import { bearerToken, Forbidden, hasScope, Unauthorized, type Principal, type Scope, type TokenVerifier } from '@droplet-mesh/udc-kit';
import type { AuthFailureLimiter } from './auth-limiter.js';
import { keyMatchesHash, sameSecret } from './credentials.js';
import type { RecordStore } from './record-store.js';

/** Who is calling a registry route: the admin key, a droplet's own key, or a JWT. */
export type Caller = { kind: 'admin' } | { kind: 'droplet-key'; id: string } | { kind: 'jwt'; principal: Principal };

export interface CallerDeps {
  adminKey: () => string;
  store: RecordStore;
  verifier: TokenVerifier;
  /** Counts wrong keys on every route that accepts one. */
  limiter: AuthFailureLimiter;
}

/** `forId`: the record a droplet key is checked against (its claim's key while the record is absent). */
export async function identifyCaller(req: Request, deps: CallerDeps, forId?: string): Promise<Caller> {
  const key = req.header('x-registry-key');
  if (key !== undefined) {
    await deps.limiter.assertAllowed(req);
    if (sameSecret(key, deps.adminKey())) return { kind: 'admin' };
    if (forId && keyMatchesHash(key, deps.store.keyHashOf(forId))) return { kind: 'droplet-key', id: forId };
    await deps.limiter.recordFailure(req);
    req.log.warn({ droplet_id: forId, path: req.path, result: 'refused' }, 'wrong registry key');
    throw new Unauthorized('wrong registry key');
  }
  const token = bearerToken(req.header('authorization'));
  if (!token) throw new Unauthorized('send X-Registry-Key or a bearer token');
  return { kind: 'jwt', principal: await deps.verifier.verify(token) };
}

export function isAdmin(c: Caller): boolean {
  return c.kind === 'admin' || (c.kind === 'jwt' && hasScope(c.principal, 'admin'));
}

/** Keys act with every scope they may; a JWT with the scopes it carries (admin implies write implies read). */
export function assertCallerScope(c: Caller, scope: Scope, doing: string): void {
  if (c.kind === 'jwt' && !hasScope(c.principal, scope))
    throw new Forbidden(`${doing} needs the '${scope}' scope`, { required_scope: scope, granted: c.principal.scopes });
}

/** The droplet id acting, for stewardship checks. */
export function actingId(c: Caller): string | undefined {
  return c.kind === 'droplet-key' ? c.id : c.kind === 'jwt' ? c.principal.droplet_id : undefined;
}
