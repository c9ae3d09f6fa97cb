import type { LivenessStatus } from '@droplet-mesh/registry-client';

export interface LivenessRules {
  staleAfterMissed: number;
  downAfterMissed: number;
}

/** active → stale after N missed intervals → down after M; any heartbeat brings it back to active. */
export function nextLivenessState(lastSeenMs: number, intervalS: number, nowMs: number, rules: LivenessRules): LivenessStatus {
  const missed = (nowMs - lastSeenMs) / (intervalS * 1000);
  if (missed >= rules.downAfterMissed) return 'down';
  if (missed >= rules.staleAfterMissed) return 'stale';
  return 'active';
}

/** The event a status change emits, by its new state. */
export function transitionEvent(
  from: LivenessStatus,
  to: LivenessStatus,
): 'droplet.stale' | 'droplet.down' | 'droplet.recovered' | undefined {
  if (from === to) return undefined;
  if (to === 'active') return 'droplet.recovered';
  return to === 'stale' ? 'droplet.stale' : 'droplet.down';
}
