import type { Upstream } from '../domain/route-spec.js';

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

/** GET http://host:port<path> on every upstream; healthy means all answer 2xx/3xx in time. */
export function httpHealthProbe(timeoutMs: number): HealthProbe {
  return async (upstreams, path) => {
    const results = await Promise.all(
      upstreams.map(async (u): Promise<UpstreamHealth> => {
        const host = u.host.includes(':') ? `[${u.host}]` : u.host;
        const started = Date.now();
        try {
          const res = await fetch(`http://${host}:${u.port}${path}`, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
          await res.body?.cancel();
          const ok = res.status >= 200 && res.status < 400;
          return {
            host: u.host,
            port: u.port,
            ok,
            status_code: res.status,
            duration_ms: Date.now() - started,
            ...(ok ? {} : { error: `answered ${res.status}` }),
          };
        } catch (err) {
          const e = err as Error & { cause?: { code?: string; message?: string } };
          const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
          return { host: u.host, port: u.port, ok: false, error: reason, duration_ms: Date.now() - started };
        }
      }),
    );
    return { ok: results.every((r) => r.ok), checked_at: new Date().toISOString(), upstreams: results };
  };
}
