import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { escalatePast, initialRecovery } from '../domain/recovery-plan.js';
import {
  appendTimeline,
  checkAddress,
  type Incident,
  type Observation,
  type RecoveryState,
  type Target,
  type TimelineEntry,
} from '../domain/types.js';
import { decideVerdict, quorumSize, type VerdictParams } from '../domain/verdict.js';
import { incidentNotification } from '../notify/notification.js';
import type { Notifier } from '../notify/notifier.js';
import type { IncidentStore } from '../store/incident-store.js';
import {
  describeCrashLoop,
  describeDeath,
  type ContainerDied,
  type ContainerRestarted,
  type CrashLoop,
} from '../targets/container-events.js';
import { targetRevision } from '../targets/record-events.js';
import type { Reread } from '../targets/target-directory.js';
import type { ObservationBoard } from './observation-board.js';

export interface EvaluatorDeps {
  monitorId: string;
  board: ObservationBoard;
  store: IncidentStore;
  notifier: Notifier;
  assignment: (targetId: string) => string[];
  target: (targetId: string) => Target | undefined;
  /** The target's record read fresh (uncached) and applied to what this monitor checks. */
  reread: (targetId: string) => Promise<Reread>;
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

  /** How old an observation may be and still count (a config reload changed the check interval). */
  setWindow(windowMs: number): void {
    this.d.params = { ...this.d.params, windowMs };
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
      const target = this.d.target(targetId);
      if (!target) return;
      const url = checkAddress(target);
      const verdict = decideVerdict({
        assigned,
        url,
        latest: this.d.board.latestFor(targetId),
        currentlyDown: !!open,
        ...(open ? { downSince: Date.parse(open.opened_at) } : {}),
        now: this.now(),
        params: this.d.params,
      });
      if (verdict === 'down') await this.confirmDown(targetId, assigned, url);
      else if (verdict === 'up' && open) await this.resolve(targetId, open.id);
    } catch (err) {
      this.d.log.warn({ err, target_id: targetId }, 'evaluation failed');
    } finally {
      this.busy.delete(targetId);
    }
  }

  /**
   * A quorum says down. Before declaring it, read the target's record fresh: the
   * deployer may have moved it (a redeploy registers the new address, then stops the old
   * one) or it may have left the registry, and the list we check from can lag by
   * TARGET_REFRESH_MS plus the registry client's list cache.
   */
  private async confirmDown(targetId: string, assigned: string[], url: string): Promise<void> {
    const fresh = await this.d.reread(targetId);
    if (fresh.kind === 'moved') {
      // The directory hands the new address to the scheduler, which checks it at once.
      this.d.log.info(
        { target_id: targetId, from: url, to: checkAddress(fresh.target) },
        'target moved: re-checking its new address instead of opening an incident',
      );
      return;
    }
    if (fresh.kind === 'gone') {
      this.d.log.info({ target_id: targetId }, 'target left the registry: no incident');
      return;
    }
    // Unverified (registry unreachable): a registry outage must not hide a real one.
    if (fresh.kind === 'unverified')
      this.d.log.warn({ target_id: targetId, err: fresh.error }, 'could not re-read the target; judging by its last known address');
    await this.open(fresh.target ?? this.d.target(targetId), assigned, url);
  }

  private failingEvidence(targetId: string, assigned: string[], url: string): Array<Pick<Observation, 'monitor_id' | 'error' | 'at'>> {
    const latest = this.d.board.latestFor(targetId);
    return assigned
      .map((m) => latest.get(m)?.obs)
      .filter((o): o is Observation => !!o && !o.ok && !o.monitor_degraded && o.url === url)
      .map((o) => ({ monitor_id: o.monitor_id, error: o.error, at: o.at }));
  }

  private async open(target: Target | undefined, assigned: string[], url: string): Promise<void> {
    if (!target) return;
    const targetId = target.id;
    const now = this.now();
    const evidence = this.failingEvidence(targetId, assigned, url);
    const at = new Date(now).toISOString();
    const errors = [...new Set(evidence.map((e) => e.error ?? 'failed'))].join(', ');
    const incident: Incident = {
      id: newIncidentId(now),
      target_id: targetId,
      url,
      target_revision: targetRevision(target),
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

  /**
   * The deployer saw one of the target's containers die: an incident now, not after a quorum
   * of failed checks. It is already starting the container again, so this incident's own
   * recovery waits `graceMs` first; the checks resolve it once they see the target serve.
   * Reported more than once (deployer replicas, redelivery), one death is recorded once.
   */
  async openFromDeath(e: ContainerDied, graceMs: number): Promise<void> {
    const now = this.now();
    const detail = { source: 'deployer', ...e };
    const recovery = (policy: RecoveryState) => ({ ...policy, next_attempt_at: new Date(now + graceMs).toISOString() });
    if ((await this.openFromDeployer(e.target_id, describeDeath(e), detail, recovery)) !== 'already open') return;
    // Already open (a crash loop, or checks were first): the death goes on its timeline.
    const at = new Date(now).toISOString();
    await this.noteOnOpen(e.target_id, 'container.died', e.died_at, { at, event: 'container.died', by: 'deployer', detail });
  }

  /**
   * The deployer restarted a container again and again and stopped: its own restart step
   * would be one more futile restart, so recovery goes on past it at once (to a reboot or an
   * alert, as the target's policy says). Opens the incident when none is open.
   */
  async escalateCrashLoop(e: CrashLoop): Promise<void> {
    const now = this.now();
    const reason = describeCrashLoop(e);
    const detail = { source: 'deployer', ...e };
    const escalate = (r: RecoveryState) => escalatePast(r, 'restart', reason, now);
    if ((await this.openFromDeployer(e.target_id, reason, detail, escalate)) !== 'already open') return;
    const entry: TimelineEntry = { at: new Date(now).toISOString(), event: 'container.crash_loop', by: 'deployer', detail };
    // Once per incident: every deployer replica reports it.
    await this.d.store.update(e.target_id, (i) =>
      i.status === 'resolved' || i.recovery.escalation !== undefined
        ? undefined
        : appendTimeline({ ...i, recovery: escalate(i.recovery) }, entry),
    );
  }

  /** An incident from a deployer event, opened by this monitor when it checks the target. */
  private async openFromDeployer(
    targetId: string,
    reason: string,
    detail: Record<string, unknown>,
    recovery: (initial: RecoveryState) => RecoveryState,
  ): Promise<'opened' | 'already open' | 'not checked here'> {
    const target = this.d.target(targetId);
    if (!target || !this.d.assignment(targetId).includes(this.d.monitorId)) return 'not checked here';
    const now = this.now();
    const at = new Date(now).toISOString();
    const incident: Incident = {
      id: newIncidentId(now),
      target_id: target.id,
      url: checkAddress(target),
      target_revision: targetRevision(target),
      status: 'open',
      reason,
      opened_at: at,
      opened_by: this.d.monitorId,
      recovery: recovery(initialRecovery(target.recovery ?? ['alert'])),
      timeline: [{ at, event: 'opened', by: this.d.monitorId, detail }],
    };
    if (!(await this.d.store.create(incident))) return 'already open';
    this.d.log.warn({ incident_id: incident.id, target_id: target.id, reason }, 'incident opened');
    this.d.emit('incident.opened', incident, 'warn');
    this.d.notifier.notify(incidentNotification('incident.opened', incident, target));
    return 'opened';
  }

  /** The deployer started a dead container again: on the open incident's timeline (the checks still decide when it is over). */
  async noteRestart(e: ContainerRestarted): Promise<void> {
    if (!this.d.assignment(e.target_id).includes(this.d.monitorId)) return;
    const at = new Date(this.now()).toISOString();
    await this.noteOnOpen(e.target_id, 'container.restarted', e.died_at, { at, event: 'container.restarted', by: 'deployer', detail: e });
  }

  private async noteOnOpen(targetId: string, event: string, diedAt: string, entry: TimelineEntry): Promise<void> {
    const sameDeath = (t: TimelineEntry) =>
      (t.event === event || (event === 'container.died' && t.event === 'opened')) && t.detail?.died_at === diedAt;
    await this.d.store.update(targetId, (i) =>
      i.status === 'resolved' || i.timeline.some(sameDeath) ? undefined : appendTimeline(i, entry),
    );
  }

  private async resolve(targetId: string, incidentId: string): Promise<void> {
    const at = new Date(this.now()).toISOString();
    const resolved = await this.d.store.update(targetId, (i) =>
      i.id !== incidentId || i.status === 'resolved'
        ? undefined
        : appendTimeline(
            { ...i, status: 'resolved', resolved_at: at, resolved_by: this.d.monitorId },
            { at, event: 'resolved', by: this.d.monitorId },
          ),
    );
    if (!resolved) return;
    this.announceResolved(resolved);
    await this.d.store.archive(targetId);
  }

  /** The target left the registry: its open incident (if any) ends, saying so. Any monitor may do it; one writes. */
  async resolveDeparted(targetId: string): Promise<void> {
    const note = 'The target left the registry; nothing to check or recover any more.';
    const at = new Date(this.now()).toISOString();
    const resolved = await this.d.store.update(targetId, (i) =>
      i.status === 'resolved'
        ? undefined
        : appendTimeline(
            { ...i, status: 'resolved', resolved_at: at, resolved_by: this.d.monitorId },
            { at, event: 'resolved', by: this.d.monitorId, detail: { note: 'target left the registry' } },
          ),
    );
    if (resolved) this.announceResolved(resolved, note);
    await this.d.store.archive(targetId);
  }

  private announceResolved(incident: Incident, note?: string): void {
    this.d.log.info({ incident_id: incident.id, target_id: incident.target_id, ...(note ? { note } : {}) }, 'incident resolved');
    this.d.emit('incident.resolved', incident);
    this.d.notifier.notify(incidentNotification('incident.resolved', incident, this.d.target(incident.target_id), note));
  }
}
