import type { RecoveryState, RecoveryStep, Target } from './types.js';

export interface RecoveryParams {
  maxAttemptsPerStep: number;
  backoffMs: number;
  backoffMaxMs: number;
}

export type RecoveryDecision =
  | { kind: 'wait'; until: number }
  | { kind: 'act'; step: Exclude<RecoveryStep, 'alert'>; attempt: number }
  | { kind: 'alert'; reason: string }
  | { kind: 'done' };

export function initialRecovery(policy: RecoveryStep[]): RecoveryState {
  return { policy: [...policy], step_index: 0, attempts_in_step: 0, attempts_total: 0, exhausted: false };
}

/**
 * Whether a step can act on this target at all: the deployer restarts apps and droplets,
 * not machines; reboot needs to know the machine.
 */
export function stepApplies(step: RecoveryStep, target: Target | undefined): boolean {
  if (step === 'restart') return target?.kind !== 'host';
  if (step === 'reboot') return !!target && typeof target.metadata.provider === 'string' && typeof target.metadata.instance_id === 'string';
  return true;
}

/**
 * What the recovery leader does next. Steps run in policy order; each gets at most
 * `maxAttemptsPerStep` attempts, a step that cannot apply is skipped, `alert` (or the
 * end of the policy) ends automatic recovery. Returns the state with skips applied.
 */
export function planRecovery(
  state: RecoveryState,
  target: Target | undefined,
  now: number,
  params: RecoveryParams,
): { state: RecoveryState; decision: RecoveryDecision } {
  if (state.exhausted) return { state, decision: { kind: 'done' } };
  if (state.next_attempt_at && now < Date.parse(state.next_attempt_at))
    return { state, decision: { kind: 'wait', until: Date.parse(state.next_attempt_at) } };
  let s = state;
  for (;;) {
    const step = s.policy[s.step_index];
    if (step === undefined) return { state: s, decision: { kind: 'alert', reason: s.escalation ?? 'every recovery step was tried' } };
    if (step === 'alert') return { state: s, decision: { kind: 'alert', reason: s.escalation ?? 'policy says alert only' } };
    if (s.attempts_in_step >= params.maxAttemptsPerStep || !stepApplies(step, target) || s.skip?.includes(step)) {
      s = { ...s, step_index: s.step_index + 1, attempts_in_step: 0 };
      continue;
    }
    return { state: s, decision: { kind: 'act', step, attempt: s.attempts_in_step + 1 } };
  }
}

/**
 * Something outside showed a step futile (the deployer gave up restarting a crash loop):
 * the policy goes on past it, with its next step due now. Once per incident.
 */
export function escalatePast(state: RecoveryState, step: RecoveryStep, reason: string, now: number): RecoveryState {
  if (state.exhausted || state.escalation !== undefined) return state;
  return { ...state, skip: [...(state.skip ?? []), step], escalation: reason, next_attempt_at: new Date(now).toISOString() };
}

export function backoffDelay(attemptsTotal: number, params: RecoveryParams): number {
  return Math.min(params.backoffMaxMs, params.backoffMs * 2 ** Math.max(0, attemptsTotal - 1));
}

/** Record that an action was sent: count it and leave it time to work before the next one. */
export function recordAttempt(state: RecoveryState, now: number, params: RecoveryParams): RecoveryState {
  const attempts_total = state.attempts_total + 1;
  return {
    ...state,
    attempts_in_step: state.attempts_in_step + 1,
    attempts_total,
    next_attempt_at: new Date(now + backoffDelay(attempts_total, params)).toISOString(),
  };
}

export function markExhausted(state: RecoveryState): RecoveryState {
  return { ...state, exhausted: true, next_attempt_at: undefined };
}
