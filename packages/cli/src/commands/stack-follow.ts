import { CliError } from '../errors.js';
import type { HttpClient } from '../http.js';
import { readSse, sseJson } from '../sse.js';

export interface StepEvent {
  n: number;
  id: string;
  action: string;
  status: string;
  detail?: string;
  error?: { message: string; code?: string };
  total: number;
}

export interface ApplyEnd {
  status: string;
  failed_step?: { n: number; id: string; error: string };
  undo: Array<{ n: number; id: string; result: string; detail: string }>;
  not_done: Array<{ n: number; id: string; reason: string }>;
}

interface ApplyRecord extends ApplyEnd {
  steps: Array<Omit<StepEvent, 'total'>>;
}

/**
 * Follows `GET /stacks/{name}/applies/{id}/events` until the apply ends, calling `onStep`
 * once per step change. The stream replays every step on reconnect (the orchestrator
 * restarted, or its wait limit passed): changes already shown are skipped.
 */
export async function followApply(
  orchestrator: HttpClient,
  stack: string,
  applyId: string,
  onStep: (e: StepEvent) => void,
  o: { timeoutMs: number; reconnectDelayMs?: number; maxReconnects?: number },
): Promise<ApplyEnd> {
  const base = `/stacks/${encodeURIComponent(stack)}/applies/${encodeURIComponent(applyId)}`;
  const deadline = AbortSignal.timeout(o.timeoutMs);
  const shown = new Map<number, string>();
  const show = (e: StepEvent) => {
    const key = `${e.status}:${e.detail ?? ''}`;
    if (shown.get(e.n) === key) return;
    shown.set(e.n, key);
    onStep(e);
  };
  const maxReconnects = o.maxReconnects ?? 60;
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await orchestrator.fetch('GET', `${base}/events`, {
        accept: 'text/event-stream',
        signal: deadline,
        timeoutMs: o.timeoutMs,
      });
      if (!res.ok || !res.body) {
        await orchestrator.send('GET', `${base}/events`, { timeoutMs: 10_000 });
        throw new CliError('INTERNAL_ERROR', `the orchestrator answered HTTP ${res.status} without an event stream`);
      }
      for await (const m of readSse(res.body as unknown as AsyncIterable<Uint8Array>)) {
        if (m.event === 'step') {
          const e = sseJson<StepEvent>(m);
          if (e) show(e);
        } else if (m.event === 'status') {
          const end = sseJson<ApplyEnd>(m);
          if (end) return end;
        }
      }
    } catch (err) {
      if (deadline.aborted)
        throw new CliError(
          'DEPENDENCY_UNAVAILABLE',
          `stopped following apply ${applyId} after ${Math.round(o.timeoutMs / 1000)}s; it goes on in the orchestrator`,
          undefined,
          `meshctl stack status --name ${stack}`,
        );
      if (err instanceof CliError && err.code !== 'DEPENDENCY_UNAVAILABLE') throw err;
      if (attempt >= maxReconnects) throw err;
    }
    // The stream ended before the apply did (or the orchestrator restarted): ask the record, then listen again.
    const a = await orchestrator.get<ApplyRecord>(base).catch((err) => {
      if (attempt >= maxReconnects) throw err;
      return undefined;
    });
    if (a) {
      for (const s of a.steps) if (s.status !== 'pending') show({ ...s, total: a.steps.length });
      if (a.status !== 'running') return a;
    }
    if (attempt >= maxReconnects)
      throw new CliError('DEPENDENCY_UNAVAILABLE', `the progress stream of apply ${applyId} kept ending before the apply did`);
    await new Promise((r) => setTimeout(r, o.reconnectDelayMs ?? 500));
  }
}
