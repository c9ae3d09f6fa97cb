import type { Observation } from './types.js';

export interface SeenObservation {
  obs: Observation;
  /** Local receive time (ms): monitors' clocks may disagree, ours decides freshness. */
  receivedAt: number;
}

export interface VerdictParams {
  windowMs: number;
  failsToSuspect: number;
  oksToRecover: number;
}

export type Verdict = 'down' | 'up' | 'hold';

/** Majority of the assigned monitors. */
export function quorumSize(assigned: number): number {
  return Math.floor(assigned / 2) + 1;
}

/**
 * Quorum with hysteresis. Down needs a majority of the assigned monitors, each with a
 * fresh report of `failsToSuspect` failures in a row and a working network of its own;
 * up needs a majority reporting `oksToRecover` good checks in a row. Only reports about
 * `url`, the target's current address, count: after a redeploy, failures of the old
 * address say nothing about the new one.
 */
export function decideVerdict(input: {
  assigned: readonly string[];
  url: string;
  latest: ReadonlyMap<string, SeenObservation>;
  currentlyDown: boolean;
  /** While down: when the incident opened (local ms). Only checks received since then can say it is back. */
  downSince?: number;
  now: number;
  params: VerdictParams;
}): Verdict {
  const { assigned, url, latest, currentlyDown, downSince, now, params } = input;
  if (assigned.length === 0) return 'hold';
  const need = quorumSize(assigned.length);
  let failing = 0;
  let recovered = 0;
  for (const m of assigned) {
    const seen = latest.get(m);
    if (!seen || now - seen.receivedAt > params.windowMs || seen.obs.url !== url) continue;
    const o = seen.obs;
    if (!o.ok && !o.monitor_degraded && o.consecutive_failures >= params.failsToSuspect) failing++;
    // A run of good checks from before the incident (one opened from a deployer event, say) is no recovery.
    if (o.ok && o.consecutive_successes >= params.oksToRecover && !(downSince !== undefined && seen.receivedAt < downSince)) recovered++;
  }
  if (!currentlyDown && failing >= need) return 'down';
  if (currentlyDown && recovered >= need) return 'up';
  return 'hold';
}
