import { Agent, request } from 'undici';

export interface CheckOutcome {
  ok: boolean;
  latency_ms: number;
  status_code?: number;
  error?: string;
}

/** How a check reaches a URL; a port so tests and benchmarks can count or fake it. */
export interface HttpProbe {
  get(url: string, timeoutMs: number): Promise<CheckOutcome>;
  close(): Promise<void>;
}

/**
 * HTTP GET with a hard timeout over a keep-alive pool. A 2xx or 3xx is healthy; any
 * other status, a refused connection or a timeout is a failed check.
 */
export class UndiciProbe implements HttpProbe {
  private agent = new Agent({ keepAliveTimeout: 30_000, connections: 4, pipelining: 1 });

  async get(url: string, timeoutMs: number): Promise<CheckOutcome> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    try {
      const res = await request(url, {
        method: 'GET',
        dispatcher: this.agent,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs),
        headers: { 'user-agent': 'droplet-mesh-health-monitor' },
      });
      await res.body.dump();
      const ok = res.statusCode >= 200 && res.statusCode < 400;
      return { ok, latency_ms: elapsed(), status_code: res.statusCode, ...(ok ? {} : { error: `HTTP ${res.statusCode}` }) };
    } catch (err) {
      return { ok: false, latency_ms: elapsed(), error: describeNetworkError(err) };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { name?: string; code?: string; message?: string; cause?: { code?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT')
    return 'timeout';
  return e.code ?? e.cause?.code ?? e.name ?? 'error';
}
