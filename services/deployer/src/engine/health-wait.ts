import type { ContainerEngine } from './container-engine.js';

export interface HealthTarget {
  containerId: string;
  url: string;
}

/**
 * Wait until every URL answers 2xx/3xx. A container that exits fails at once instead of
 * waiting for the deadline. The signal carries the step's deadline. A short poll interval:
 * an app is usually up within a few hundred ms, and each probe is one loopback request.
 */
export async function waitHealthy(engine: ContainerEngine, targets: HealthTarget[], signal: AbortSignal, everyMs = 50): Promise<void> {
  await Promise.all(
    targets.map(async (t) => {
      let lastCheck = 0;
      for (;;) {
        if (signal.aborted) throw signal.reason ?? new Error('aborted');
        try {
          const res = await fetch(t.url, { signal: AbortSignal.any([signal, AbortSignal.timeout(2000)]), redirect: 'manual' });
          await res.body?.cancel();
          if (res.status >= 200 && res.status < 400) return;
        } catch {
          /* not listening yet */
        }
        if (Date.now() - lastCheck > 500) {
          lastCheck = Date.now();
          const st = await engine.inspect(t.containerId);
          if (!st) throw new Error(`container ${t.containerId.slice(0, 12)} disappeared`);
          if (!st.running) throw new Error(`container exited with code ${st.exitCode ?? 'unknown'} before ${t.url} answered`);
        }
        await new Promise((r) => setTimeout(r, everyMs));
      }
    }),
  );
}

/** Workers have no health path: running for `settleMs` without exiting counts as started. */
export async function waitRunning(engine: ContainerEngine, ids: string[], settleMs: number, signal: AbortSignal): Promise<void> {
  const until = Date.now() + settleMs;
  while (Date.now() < until) {
    if (signal.aborted) throw signal.reason ?? new Error('aborted');
    for (const id of ids) {
      const st = await engine.inspect(id);
      if (!st?.running) throw new Error(`container exited with code ${st?.exitCode ?? 'unknown'}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
