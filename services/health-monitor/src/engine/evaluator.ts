import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { initialRecovery } from '../domain/recovery-plan.js';
import { appendTimeline, type Incident, type Observation, type Target } from '../domain/types.js';
import { decideVerdict, quorumSize, type VerdictParams } from '../domain/verdict.js';
import { incidentNotification } from '../notify/notification.js';
import type { Notifier } from '../notify/notifier.js';
import type { IncidentStore } from '../store/incident-store.js';
import type { ObservationBoard } from './observation-board.js';

export interface EvaluatorDeps {
  monitorId: string;
  board: ObservationBoard;
  store: IncidentStore;
  notifier: Notifier;
  assignment: (targetId: string) => string[];
  target: (targetId: string) => Target | undefined;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  params: VerdictParams;
  log: Logger;
  now?: () => number;
}

export function newIncidentId(now: number): string {
  return `inc-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

/**
 * Turns observations into verdicts for the targets this monitor is assigned, and
 * opens or resolves incidents. Several monitors evaluate the same target; the KV
 * create / compare-and-set in the store lets exactly one of them act.
 */
export class Evaluator {
  private busy = new Set<string>();
  private now: () => number;

  constructor(private d: EvaluatorDeps) {
    this.now = d.now ?? Date.now;
  }

  async evaluate(targetId: string): Promise<void> {
    if (this.busy.has(targetId)) return;
    const assigned = this.d.assignment(targetId);
    if (!assigned.includes(this.d.monitorId)) return;
    this.busy.add(targetId);
    try {
      const open = this.d.store.openFor(targetId);
      if (open?.status === 'resolved') {
        await this.d.store.archive(targetId);
        return;
      }
      const verdict = decideVerdict({ assigned, latest: this.d.board.latestFor(targetId), currentlyDown: !!open, now: this.now(), params: this.d.params });
      if (verdict === 'down') await this.open(targetId, assigned);
      else if (verdict === 'up' && open) await this.resolve(targetId, open.id);
    } catch (err) {
      this.d.log.warn({ err, target_id: targetId }, 'evaluation failed');
    } finally {
      this.busy.delete(targetId);
    }
  }

  private failingEvidence(targetId: string, assigned: string[]): Array<Pick<Observation, 'monitor_id' | 'error' | 'at'>> {
    const latest = this.d.board.latestFor(targetId);
    return assigned
      .map((m) => latest.get(m)?.obs)
      .filter((o): o is Observation => !!o && !o.ok && !o.monitor_degraded)
      .map((o) => ({ monitor_id: o.monitor_id, error: o.error, at: o.at }));
  }

  private async open(targetId: string, assigned: string[]): Promise<void> {
    const target = this.d.target(targetId);
    const now = this.now();
    const evidence = this.failingEvidence(targetId, assigned);
    const at = new Date(now).toISOString();
    const errors = [...new Set(evidence.map((e) => e.error ?? 'failed'))].join(', ');
    const incident: Incident = {
      id: newIncidentId(now),
      target_id: targetId,
      status: 'open',
      reason: `${evidence.length} of ${assigned.length} assigned monitors report failure (quorum ${quorumSize(assigned.length)}): ${errors}`,
      opened_at: at,
      opened_by: this.d.monitorId,
      recovery: initialRecovery(target?.recovery ?? ['alert']),
      timeline: [{ at, event: 'opened', by: this.d.monitorId, detail: { assigned, evidence } }],
    };
    if (!(await this.d.store.create(incident))) return;
    this.d.log.warn({ incident_id: incident.id, target_id: targetId, reason: incident.reason }, 'incident opened');
    this.d.emit('incident.opened', incident, 'warn');
    this.d.notifier.notify(incidentNotification('incident.opened', incident, target));
  }

  private async resolve(targetId: string, incidentId: string): Promise<void> {
    const at = new Date(this.now()).toISOString();
    const resolved = await this.d.store.update(targetId, (i) =>
      i.id !== incidentId || i.status === 'resolved'
        ? undefined
        : appendTimeline({ ...i, status: 'resolved', resolved_at: at, resolved_by: this.d.monitorId }, { at, event: 'resolved', by: this.d.monitorId }),
    );
    if (!resolved) return;
    this.d.log.info({ incident_id: resolved.id, target_id: targetId }, 'incident resolved');
    this.d.emit('incident.resolved', resolved);
    this.d.notifier.notify(incidentNotification('incident.resolved', resolved, this.d.target(targetId)));
    await this.d.store.archive(targetId);
  }
}
