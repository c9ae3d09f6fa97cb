import { DependencyUnavailable, UdcError } from '@droplet-mesh/udc-kit';
import type { CloudProvider, ProviderName } from '../providers/cloud-provider.js';

export type ProviderOutcome<T> =
  | { provider: ProviderName; status: 'ok'; value: T; duration_ms: number }
  | { provider: ProviderName; status: 'error'; error: { code: string; message: string; details?: unknown }; duration_ms: number };

/**
 * Run one call on several providers at once, each under its own deadline. A failing or
 * slow provider yields an error entry; the others still answer (partial results).
 */
export async function fanOut<T>(
  providers: CloudProvider[],
  timeoutMs: number,
  call: (p: CloudProvider, signal: AbortSignal) => Promise<T>,
): Promise<ProviderOutcome<T>[]> {
  return Promise.all(
    providers.map(async (p): Promise<ProviderOutcome<T>> => {
      const started = Date.now();
      const signal = AbortSignal.timeout(timeoutMs);
      try {
        const value = await raceAbort(call(p, signal), signal);
        return { provider: p.name, status: 'ok', value, duration_ms: Date.now() - started };
      } catch (err) {
        const e = signal.aborted
          ? new DependencyUnavailable(`${p.name} did not answer within ${timeoutMs} ms`, { provider: p.name }, 504)
          : err instanceof UdcError
            ? err
            : new DependencyUnavailable(`${p.name} failed`, { provider: p.name, reason: (err as Error).message });
        return {
          provider: p.name,
          status: 'error',
          error: { code: e.code, message: e.message, details: e.details },
          duration_ms: Date.now() - started,
        };
      }
    }),
  );
}

/** Settle as soon as the signal fires, even if the call ignores it (the local engine does). */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
