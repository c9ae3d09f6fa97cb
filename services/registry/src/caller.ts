import type { Request } from 'express';
import { bearerToken, hasScope, Unauthorized, type Principal, type TokenVerifier } from '@droplet-mesh/udc-kit';
import { keyMatchesHash, sameSecret } from './credentials.js';
import type { RecordStore } from './record-store.js';

/** Who is calling a registry route: the admin key, a droplet's own key, or a JWT. */
export type Caller = { kind: 'admin' } | { kind: 'droplet-key'; id: string } | { kind: 'jwt'; principal: Principal };

export interface CallerDeps {
  adminKey: () => string;
  store: RecordStore;
  verifier: TokenVerifier;
}

/** `forId`: the record a droplet key is checked against. */
export async function identifyCaller(req: Request, deps: CallerDeps, forId?: string): Promise<Caller> {
  const key = req.header('x-registry-key');
  if (key !== undefined) {
    if (sameSecret(key, deps.adminKey())) return { kind: 'admin' };
    if (forId && keyMatchesHash(key, deps.store.get(forId)?.key_hash)) return { kind: 'droplet-key', id: forId };
    throw new Unauthorized('wrong registry key');
  }
  const token = bearerToken(req.header('authorization'));
  if (!token) throw new Unauthorized('send X-Registry-Key or a bearer token');
  return { kind: 'jwt', principal: await deps.verifier.verify(token) };
}

export function isAdmin(c: Caller): boolean {
  return c.kind === 'admin' || (c.kind === 'jwt' && hasScope(c.principal, 'admin'));
}

/** The droplet id acting, for stewardship checks. */
export function actingId(c: Caller): string | undefined {
  return c.kind === 'droplet-key' ? c.id : c.kind === 'jwt' ? c.principal.droplet_id : undefined;
}
