import { request } from 'node:http';
import { isIP } from 'node:net';
import { AddressPolicy } from '@droplet-mesh/udc-kit';
import { upstreamGroups, type RouteSpec, type Upstream } from '../domain/route-spec.js';

export interface UpstreamHealth {
  host: string;
  port: number;
  ok: boolean;
  status_code?: number;
  error?: string;
  duration_ms: number;
}
export interface HealthResult {
  ok: boolean;
  checked_at: string;
  upstreams: UpstreamHealth[];
}

export type HealthProbe = (upstreams: Upstream[], path: string) => Promise<HealthResult>;

/** One GET; resolves with the status code or rejects with the connection's error. */
function getStatus(u: Upstream, path: string, timeoutMs: number, policy: AddressPolicy): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.host,
        port: u.port,
        path,
        method: 'GET',
        agent: false,
        // A name is checked against the policy at the moment it is resolved for this connection.
        lookup: policy.lookupFor(u.port),
        timeout: timeoutMs,
        headers: { 'user-agent': 'droplet-mesh-proxy-manager' },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    const deadline = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { name: 'TimeoutError' })), timeoutMs);
    deadline.unref();
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { name: 'TimeoutError' })));
    req.on('error', reject);
    req.on('close', () => clearTimeout(deadline));
    req.end();
  });
}

/**
 * GET http://host:port<path> on every upstream; healthy means all answer 2xx/3xx in time.
 * An address the policy refuses is never contacted (it fails with `ADDRESS_REFUSED`).
 */
export function httpHealthProbe(timeoutMs: number, policy: AddressPolicy = new AddressPolicy()): HealthProbe {
  return async (upstreams, path) => {
    const results = await Promise.all(
      upstreams.map(async (u): Promise<UpstreamHealth> => {
        const started = Date.now();
        if (isIP(u.host) && !policy.checkAddress(u.host, u.port).ok)
          return { host: u.host, port: u.port, ok: false, error: 'ADDRESS_REFUSED', duration_ms: 0 };
        try {
          const status = await getStatus(u, path, timeoutMs, policy);
          const ok = status >= 200 && status < 400;
          return {
            host: u.host,
            port: u.port,
            ok,
            status_code: status,
            duration_ms: Date.now() - started,
            ...(ok ? {} : { error: `answered ${status}` }),
          };
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.code ?? 'connection failed');
          return { host: u.host, port: u.port, ok: false, error: reason, duration_ms: Date.now() - started };
        }
      }),
    );
    return { ok: results.every((r) => r.ok), checked_at: new Date().toISOString(), upstreams: results };
  };
}

/** Every location's upstreams of a route, each at its own health path; healthy when all are. */
export async function probeRoute(probe: HealthProbe, spec: Pick<RouteSpec, 'upstreams' | 'paths' | 'health_path'>): Promise<HealthResult> {
  const results = await Promise.all(upstreamGroups(spec).map((g) => probe(g.upstreams, g.health_path)));
  return {
    ok: results.every((r) => r.ok),
    checked_at: new Date().toISOString(),
    upstreams: results.flatMap((r) => r.upstreams),
  };
}
