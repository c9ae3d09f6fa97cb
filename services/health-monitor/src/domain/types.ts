// The health-monitor's vocabulary: what it checks, what it sees, what it records.

export const RECOVERY_STEPS = ['restart', 'reboot', 'alert'] as const;
export type RecoveryStep = (typeof RECOVERY_STEPS)[number];

export interface Target {
  id: string;
  /** A droplet or app ('service'), or a machine ('host'): the deployer restarts the former, never the latter. */
  kind: 'service' | 'host';
  /** Base URL; the check GETs health_path against it. */
  url: string;
  health_path: string;
  recovery: RecoveryStep[];
  metadata: Record<string, unknown>;
  /** `deployer`: a server's Docker Engine (targets/server-engines.ts). */
  source: 'registry' | 'static' | 'deployer';
  /** The registry's own heartbeat liveness for this record, when it came from the registry. */
  heartbeat?: 'active' | 'stale' | 'down';
  /** The registry record's `updated_at` (registry clock): which of two reads is newer. */
  updated_at?: string;
  /**
   * The address policy its checks obey (registry targets only): `droplet` for a mesh
   * droplet registered as itself (steward = id), `app` for anything another droplet registered.
   */
  guard?: 'app' | 'droplet';
}

const addresses = new WeakMap<object, string>();

/** The address a check of `t` GETs, and that its observations are about (memoized: asked per observation). */
export function checkAddress(t: Pick<Target, 'url' | 'health_path'>): string {
  let a = addresses.get(t);
  if (a === undefined) addresses.set(t, (a = new URL(t.health_path, t.url).toString()));
  return a;
}

/** One check of one target by one monitor, as published (in batches, a JSON array per message) on `health-monitor.observations`. */
export interface Observation {
  monitor_id: string;
  target_id: string;
  /** The address checked (`checkAddress`): a quorum counts only observations of the target's current one. */
  url: string;
  ok: boolean;
  at: string;
  latency_ms: number;
  status_code?: number;
  error?: string;
  heartbeat?: string;
  consecutive_failures: number;
  consecutive_successes: number;
  /** The monitor could reach nothing, control checks included: its failures prove nothing. */
  monitor_degraded: boolean;
}

export type IncidentStatus = 'open' | 'recovering' | 'resolved';

export interface TimelineEntry {
  at: string;
  event: string;
  by: string;
  detail?: Record<string, unknown>;
}

export interface RecoveryState {
  policy: RecoveryStep[];
  step_index: number;
  attempts_in_step: number;
  attempts_total: number;
  /** No recovery action before this time (backoff, and time for the last action to work). */
  next_attempt_at?: string;
  exhausted: boolean;
  /** Steps known to be futile for this incident (a crash loop: the deployer already restarted it, in vain). */
  skip?: RecoveryStep[];
  /** Why recovery was escalated past steps of the policy; the alert gives it as its reason. */
  escalation?: string;
}

export interface Incident {
  id: string;
  target_id: string;
  /** The address the incident is about (checkAddress). */
  url?: string;
  /** The target's revision when the incident opened (targets/record-events targetRevision): recovery acts only on that one. */
  target_revision?: string;
  status: IncidentStatus;
  reason: string;
  opened_at: string;
  opened_by: string;
  resolved_at?: string;
  resolved_by?: string;
  /** The monitor holding the recovery lease, last we heard. */
  leader?: string;
  recovery: RecoveryState;
  timeline: TimelineEntry[];
  /** A person has it: no more notifications about it but its resolution. */
  acknowledged_at?: string;
  acknowledged_by?: string;
}

/** No notifications about a target until `until` (planned work, a known outage). */
export interface Silence {
  target_id: string;
  until: string;
  reason?: string;
  by: string;
  created_at: string;
}

export const MAX_TIMELINE = 200;

export function appendTimeline(incident: Incident, entry: TimelineEntry): Incident {
  const timeline = [...incident.timeline, entry];
  return { ...incident, timeline: timeline.length > MAX_TIMELINE ? timeline.slice(-MAX_TIMELINE) : timeline };
}
