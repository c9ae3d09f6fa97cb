import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { AddressPolicy } from '@droplet-mesh/udc-kit';
import type { ResolvedServer } from '../domain/render.js';
import type { RouteSpec, Upstream } from '../domain/route-spec.js';

export interface UnresolvedUpstream {
  host: string;
  port: number;
  error: string;
}
export interface Resolution {
  servers: ResolvedServer[];
  unresolved: UnresolvedUpstream[];
}

export type Lookup = (host: string) => Promise<string[]>;

/** getaddrinfo (so /etc/hosts counts), IPv4 addresses preferred when a name has both. */
export function systemLookup(timeoutMs: number): Lookup {
  return async (host) => {
    let timer: NodeJS.Timeout | undefined;
    try {
      const found = await Promise.race([
        lookup(host, { all: true }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`DNS lookup timed out after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      const v4 = found.filter((a) => a.family === 4).map((a) => a.address);
      return v4.length > 0 ? v4 : found.map((a) => a.address);
    } finally {
      clearTimeout(timer);
    }
  };
}

/**
 * Names are resolved here, before rendering, so the file holds only addresses: an
 * unresolvable upstream can never fail `nginx -t`, a reload or a start for everyone else,
 * and the route keeps its `upstream` block (weights, least_conn, keepalive), which the
 * `resolver` + variable approach gives up in open-source nginx 1.22. The recheck loop
 * re-resolves and re-renders when addresses change.
 */
export async function resolveUpstreams(upstreams: Upstream[], look: Lookup, policy?: AddressPolicy): Promise<Resolution> {
  const servers: ResolvedServer[] = [];
  const unresolved: UnresolvedUpstream[] = [];
  // Checked again here, on the addresses that go into the file: a route stored before the
  // policy, or a name re-pointed since it was accepted, never sends traffic to a refused address.
  const refused = (address: string, u: Upstream) => {
    const v = policy?.checkAddress(address, u.port, isIP(u.host) ? undefined : u.host);
    if (!v || v.ok) return false;
    unresolved.push({ host: u.host, port: u.port, error: `${address} is not allowed: ${v.reason}` });
    return true;
  };
  await Promise.all(
    upstreams.map(async (u) => {
      if (isIP(u.host)) {
        if (!refused(u.host, u)) servers.push({ address: u.host, port: u.port, weight: u.weight });
        return;
      }
      try {
        const addrs = await look(u.host);
        if (addrs.length === 0) throw new Error('no addresses');
        if (addrs.some((a) => refused(a, u))) return;
        for (const a of addrs) servers.push({ address: a, port: u.port, weight: u.weight });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        unresolved.push({ host: u.host, port: u.port, error: e.code ? `${e.code}: cannot resolve ${u.host}` : e.message });
      }
    }),
  );
  // Stable order, so the same inputs render the same bytes.
  const key = (s: ResolvedServer) => `${s.address}|${s.port}`;
  const seen = new Set<string>();
  const unique = servers.filter((s) => (seen.has(key(s)) ? false : (seen.add(key(s)), true)));
  unique.sort((a, b) => key(a).localeCompare(key(b)));
  return { servers: unique, unresolved };
}

export interface RouteResolution {
  /** The root location's servers. */
  servers: ResolvedServer[];
  /** Per entry of `paths` (empty for a redirect path). */
  pathServers: ResolvedServer[][];
  unresolved: UnresolvedUpstream[];
  /** Every server of the route, for status and change detection. */
  all: ResolvedServer[];
}

/** Every location's upstreams of a route, resolved in parallel. */
export async function resolveRoute(
  spec: Pick<RouteSpec, 'upstreams' | 'paths'>,
  look: Lookup,
  policy?: AddressPolicy,
): Promise<RouteResolution> {
  const [root, ...paths] = await Promise.all([
    resolveUpstreams(spec.upstreams, look, policy),
    ...spec.paths.map((p) => resolveUpstreams(p.upstreams ?? [], look, policy)),
  ]);
  return {
    servers: root.servers,
    pathServers: paths.map((r) => r.servers),
    unresolved: [root, ...paths].flatMap((r) => r.unresolved),
    all: [root, ...paths].flatMap((r) => r.servers),
  };
}
