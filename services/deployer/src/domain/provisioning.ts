// A server being provisioned: the deployer hands out its engine certificate (by identity,
// before the machine has an address) and a one-time token; the machine reports back with
// that token once its engine runs, and only then is it registered as a server.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const PROVISION_PREFIX = 'provision';

/**
 * `waiting`: material handed out, the caller creates the machine itself. With a provider:
 * `creating_instance` (multi-cloud-manager is creating it), then `waiting_for_callback`
 * (it exists; its ready report has not come). `ready` once registered, `failed` with a reason.
 */
export type ProvisionStatus = 'waiting' | 'creating_instance' | 'waiting_for_callback' | 'ready' | 'failed';

/** Still expecting the machine's ready report. */
export const isOpen = (s: ProvisionStatus) => s === 'waiting' || s === 'creating_instance' || s === 'waiting_for_callback';

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
  /** Provisioned through multi-cloud-manager: where, and the instance it created. */
  provider?: string;
  region?: string;
  size?: string;
  instance_id?: string;
  /** Why it failed (our words; never a remote's raw answer). */
  reason?: string;
  /** Each step with its time, for whoever watches the progress. */
  steps?: Array<{ at: string; status: ProvisionStatus; message: string }>;
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
  status: isOpen(rest.status) && isExpired({ ...rest, token_sha256: '' }) ? ('expired' as const) : rest.status,
});
