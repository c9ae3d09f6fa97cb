// A server being provisioned: the deployer hands out its engine certificate (by identity,
// before the machine has an address) and a one-time token; the machine reports back with
// that token once its engine runs, and only then is it registered as a server.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const PROVISION_PREFIX = 'provision';

export type ProvisionStatus = 'waiting' | 'ready';

export interface PendingServer {
  id: string;
  /** sha256 (hex) of the one-time token; the token itself is never stored. */
  token_sha256: string;
  engine_port: number;
  environments?: string[];
  status: ProvisionStatus;
  expires_at: string;
  created_at: string;
  updated_at: string;
  /** Once ready: where the engine answered, and what it reported. */
  address?: string;
  docker_version?: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function newProvisionToken(): { token: string; sha256: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, sha256: sha256(token) };
}

/** Constant-time comparison of a presented token with the stored hash. */
export function tokenMatches(presented: string | undefined, storedSha256: string): boolean {
  if (!presented || !/^[A-Za-z0-9_-]{32,128}$/.test(presented)) return false;
  const a = Buffer.from(sha256(presented), 'hex');
  const b = Buffer.from(storedSha256, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export const isExpired = (p: PendingServer, now = Date.now()) => Date.parse(p.expires_at) <= now;

export const pendingView = ({ token_sha256: _t, ...rest }: PendingServer) => ({
  ...rest,
  status: rest.status === 'waiting' && isExpired({ ...rest, token_sha256: '' }) ? ('expired' as const) : rest.status,
});
