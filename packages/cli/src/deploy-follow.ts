import { CliError } from './errors.js';
import type { HttpClient } from './http.js';
import { type DeployProgress, FINAL_STATUSES, type ProgressEvent } from './deploy-progress.js';
import { readSse, sseJson } from './sse.js';

export interface FollowOptions {
  /** Give up following after this long (the deployment itself goes on). */
  timeoutMs: number;
  /** Stream ends without a final status: look at the record, then reconnect, this many times. */
  maxReconnects?: number;
  reconnectDelayMs?: number;
  signal?: AbortSignal;
}

interface DeploymentRecord {
  status: string;
  reason?: string;
  percent?: number;
}

/**
 * Streams `GET /deployments/{id}/events` into `progress` until a final status. A dropped
 * stream is resumed (replayed events are skipped by sequence number), and a deployment
 * whose record is already final ends the wait even if its last event was missed.
 */
export async function followDeployment(
  deployer: HttpClient,
  id: string,
  progress: DeployProgress,
  o: FollowOptions,
): Promise<{ status: string; message?: string }> {
  const deadline = AbortSignal.timeout(o.timeoutMs);
  const signal = o.signal ? AbortSignal.any([o.signal, deadline]) : deadline;
  const path = `/deployments/${encodeURIComponent(id)}/events`;
  const maxReconnects = o.maxReconnects ?? 5;
  for (let attempt = 0; ; attempt++) {
    let streamError: unknown;
    try {
      // The stream may stay quiet for long steps: only the overall deadline applies.
      const res = await deployer.fetch('GET', path, { accept: 'text/event-stream', signal, timeoutMs: o.timeoutMs });
      if (!res.ok || !res.body) {
        // Let the one client turn the envelope into a typed error.
        await deployer.send('GET', path, { timeoutMs: 10_000 });
        throw new CliError('INTERNAL_ERROR', `the deployer answered HTTP ${res.status} without an event stream`);
      }
      for await (const m of readSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
        if (m.event !== 'step' && m.event !== 'log' && m.event !== 'status') continue;
        const e = sseJson<ProgressEvent>(m);
        if (e && progress.apply({ ...e, type: m.event })) return progress.final!;
      }
    } catch (err) {
      if (deadline.aborted)
        throw new CliError(
          'DEPENDENCY_UNAVAILABLE',
          `stopped following deployment ${id} after ${Math.round(o.timeoutMs / 1000)}s; it goes on in the deployer`,
          undefined,
          `meshctl deployments show ${id}`,
        );
      if (o.signal?.aborted) throw err;
      if (err instanceof CliError && !(err.code === 'DEPENDENCY_UNAVAILABLE')) throw err;
      streamError = err;
    }
    // The stream ended (or broke) before a final status: ask the record.
    const record = await deployer.get<DeploymentRecord>(`/deployments/${encodeURIComponent(id)}`);
    if (FINAL_STATUSES.has(record.status)) {
      progress.apply({ type: 'status', status: record.status, message: record.reason, percent: record.percent });
      return progress.final!;
    }
    if (attempt >= maxReconnects) {
      throw streamError instanceof CliError
        ? streamError
        : new CliError(
            'DEPENDENCY_UNAVAILABLE',
            `the progress stream of deployment ${id} kept ending before it finished (status ${record.status})`,
          );
    }
    await new Promise((r) => setTimeout(r, o.reconnectDelayMs ?? 500));
  }
}
