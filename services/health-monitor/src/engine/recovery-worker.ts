import type { Logger } from 'pino';
import type { MessageReply } from '@droplet-mesh/udc-kit';
import { markExhausted, planRecovery, recordAttempt, type RecoveryParams } from '../domain/recovery-plan.js';
import { appendTimeline, checkAddress, type Incident, type RecoveryState, type Target } from '../domain/types.js';
import { incidentNotification } from '../notify/notification.js';
import type { Notifier } from '../notify/notifier.js';
import type { IncidentStore } from '../store/incident-store.js';
import type { KvLease } from '../store/lease.js';
import { targetRevision } from '../targets/record-events.js';
import type { Reread } from '../targets/target-directory.js';

export interface RecoveryRequest {
  target: string;
  message_type: 'command';
  payload: Record<string, unknown>;
  retry_count: number;
  timeout_ms: number;
}

export interface RecoveryWorkerDeps {
  monitorId: string;
  store: IncidentStore;
  lease: KvLease;
  notifier: Notifier;
  target: (targetId: string) => Target | undefined;
  /** The target's record read fresh (uncached) and applied to what this monitor checks. */
  reread: (targetId: string) => Promise<Reread>;
  /** Resolve the open incident of a target that left the registry. */
  resolveDeparted: (targetId: string) => Promise<void>;
  send: (req: RecoveryRequest) => Promise<MessageReply>;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  params: RecoveryParams;
  requestTimeoutMs: number;
  tickMs: number;
  log: Logger;
  now?: () => number;
}

const leaseName = (incidentId: string) => `incident-${incidentId}`;

function pick(meta: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.filter((k) => typeof meta[k] === 'string').map((k) => [k, meta[k]]));
}

/** The UDC message each recovery step sends. */
export function recoveryRequest(
  step: 'restart' | 'reboot',
  incident: Incident,
  target: Target | undefined,
  requestedBy: string,
  timeoutMs: number,
): RecoveryRequest {
  const meta = target?.metadata ?? {};
  const common = { incident_id: incident.id, requested_by: requestedBy };
  if (step === 'restart') {
    return {
      target: 'deployer',
      message_type: 'command',
      // A timed-out restart may still have happened: never retry here, the backoff decides.
      retry_count: 0,
      timeout_ms: timeoutMs,
      payload: { action: 'restart', target_id: incident.target_id, ...pick(meta, ['project', 'service', 'environment']), ...common },
    };
  }
  return {
    target: 'multi-cloud-manager',
    message_type: 'command',
    retry_count: 0,
    timeout_ms: timeoutMs,
    payload: {
      action: 'instance.reboot',
      provider: meta.provider,
      instance_id: meta.instance_id,
      target_id: incident.target_id,
      ...common,
    },
  };
}

const sameRecovery = (a: RecoveryState, b: RecoveryState) =>
  a.attempts_total === b.attempts_total && a.step_index === b.step_index && a.exhausted === b.exhausted && a.escalation === b.escalation;

/**
 * For each open incident, whoever holds its lease runs the recovery policy. The lease
 * is renewed every tick; recovery progress lives in the incident itself, so a new
 * leader picks up where a dead one stopped.
 */
export class RecoveryWorker {
  private timer?: NodeJS.Timeout;
  private busy = new Set<string>();
  private now: () => number;
  private stopped = false;

  constructor(private d: RecoveryWorkerDeps) {
    this.now = d.now ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.d.tickMs);
    this.timer.unref();
  }

  async tick(): Promise<void> {
    const open = this.d.store.openIncidents().filter((i) => i.status !== 'resolved');
    const live = new Set(open.map((i) => leaseName(i.id)));
    await Promise.all(open.filter((i) => !i.recovery.exhausted && !this.busy.has(i.id)).map((i) => this.work(i)));
    // Leases of incidents that closed under us.
    for (const i of this.d.store.all())
      if (i.status === 'resolved' && !live.has(leaseName(i.id)) && this.d.lease.holds(leaseName(i.id)))
        await this.d.lease.release(leaseName(i.id));
  }

  private async work(seen: Incident): Promise<void> {
    if (this.stopped) return;
    this.busy.add(seen.id);
    const name = leaseName(seen.id);
    try {
      const had = this.d.lease.holds(name);
      if (!(await this.d.lease.acquire(name))) return;
      const cur = await this.d.store.fetchOpen(seen.target_id);
      if (!cur || cur.incident.id !== seen.id || cur.incident.status === 'resolved' || cur.incident.recovery.exhausted) {
        await this.d.lease.release(name);
        return;
      }
      let incident = cur.incident;
      if (!had || incident.leader !== this.d.monitorId) {
        this.d.log.info({ incident_id: incident.id, previous: incident.leader }, 'took the recovery lease');
        const at = new Date(this.now()).toISOString();
        incident =
          (await this.d.store.update(incident.target_id, (i) =>
            i.id !== seen.id || i.status === 'resolved'
              ? undefined
              : appendTimeline(
                  { ...i, leader: this.d.monitorId },
                  { at, event: 'leader.acquired', by: this.d.monitorId, ...(i.leader ? { detail: { previous: i.leader } } : {}) },
                ),
          )) ?? incident;
      }
      await this.step(incident);
    } catch (err) {
      this.d.log.warn({ err, incident_id: seen.id }, 'recovery step failed');
    } finally {
      this.busy.delete(seen.id);
    }
  }

  private async step(incident: Incident): Promise<void> {
    const now = this.now();
    const planned = planRecovery(incident.recovery, this.d.target(incident.target_id), now, this.d.params);
    if (planned.decision.kind === 'wait') return;
    if (planned.decision.kind === 'done') {
      await this.d.lease.release(leaseName(incident.id));
      return;
    }
    // About to act or escalate: first make sure the incident is still about this address.
    const fresh = await this.d.reread(incident.target_id);
    if (fresh.kind === 'gone') {
      await this.d.resolveDeparted(incident.target_id);
      await this.d.lease.release(leaseName(incident.id));
      return;
    }
    const target = fresh.target ?? this.d.target(incident.target_id);
    // The incident is about the record it was opened for (address and deployment); our own
    // view may have lagged. A redeploy since then is another thing: restarting it could take
    // down a healthy new deployment, so this incident ends here and the monitors judge the new one.
    if (fresh.kind !== 'unverified' && target) {
      const fromAddress = fresh.kind === 'moved' && fresh.from ? checkAddress(fresh.from) : undefined;
      const was = incident.target_revision ?? incident.url ?? fromAddress;
      const is = incident.target_revision ? targetRevision(target) : checkAddress(target);
      if (was && was !== is) return this.supersede(incident, was, is, target, now);
    }
    const { state, decision } = planRecovery(incident.recovery, target, now, this.d.params);
    if (decision.kind === 'wait') return;
    const me = this.d.monitorId;
    const at = new Date(now).toISOString();
    if (decision.kind === 'done') {
      await this.d.lease.release(leaseName(incident.id));
      return;
    }
    if (decision.kind === 'alert') {
      const updated = await this.d.store.update(incident.target_id, (i) =>
        i.id !== incident.id || !sameRecovery(i.recovery, incident.recovery)
          ? undefined
          : appendTimeline(
              { ...i, recovery: markExhausted(state) },
              { at, event: 'recovery.exhausted', by: me, detail: { reason: decision.reason } },
            ),
      );
      if (updated) {
        this.d.log.warn({ incident_id: incident.id, reason: decision.reason }, 'automatic recovery over; alerting a person');
        this.d.notifier.notify(
          incidentNotification(
            'incident.escalated',
            updated,
            target,
            `Automatic recovery stopped: ${decision.reason}. A person needs to look.`,
          ),
        );
      }
      await this.d.lease.release(leaseName(incident.id));
      return;
    }
    // Record the attempt before sending it: a leader that dies right after is not
    // followed by a second request until the backoff has passed.
    const wasRecovering = incident.status === 'recovering';
    const recorded = await this.d.store.update(incident.target_id, (i) =>
      i.id !== incident.id || i.status === 'resolved' || !sameRecovery(i.recovery, incident.recovery)
        ? undefined
        : appendTimeline(
            { ...i, status: 'recovering', leader: me, recovery: recordAttempt(state, now, this.d.params) },
            { at, event: `${decision.step}.requested`, by: me, detail: { attempt: decision.attempt } },
          ),
    );
    if (!recorded) return;
    if (!wasRecovering) this.d.emit('incident.recovering', recorded);
    const req = recoveryRequest(decision.step, recorded, target, me, this.d.requestTimeoutMs);
    let outcome: { event: string; detail: Record<string, unknown> };
    try {
      const reply = await this.d.send(req);
      outcome =
        reply.result === 'error'
          ? {
              event: `${decision.step}.failed`,
              detail: { attempt: decision.attempt, error: reply.error?.code, message: reply.error?.message },
            }
          : { event: `${decision.step}.accepted`, detail: { attempt: decision.attempt, result: reply.result } };
    } catch (err) {
      outcome = { event: `${decision.step}.failed`, detail: { attempt: decision.attempt, error: (err as Error).message } };
    }
    this.d.log.info({ incident_id: incident.id, step: decision.step, ...outcome.detail }, outcome.event);
    const doneAt = new Date(this.now()).toISOString();
    await this.d.store.update(incident.target_id, (i) =>
      i.id !== incident.id ? undefined : appendTimeline(i, { at: doneAt, event: outcome.event, by: me, detail: outcome.detail }),
    );
  }

  /** Close the incident as superseded by a newer record of its target (nothing is restarted). */
  private async supersede(incident: Incident, from: string, to: string, target: Target, now: number): Promise<void> {
    const at = new Date(now).toISOString();
    const me = this.d.monitorId;
    const resolved = await this.d.store.update(incident.target_id, (i) =>
      i.id !== incident.id || i.status === 'resolved'
        ? undefined
        : appendTimeline(
            { ...i, status: 'resolved', resolved_at: at, resolved_by: me },
            { at, event: 'superseded', by: me, detail: { from, to } },
          ),
    );
    await this.d.lease.release(leaseName(incident.id));
    if (!resolved) return;
    const note = 'The target was redeployed since the incident opened; its new deployment is checked afresh.';
    this.d.log.info({ incident_id: incident.id, target_id: incident.target_id, from, to }, 'incident superseded by a newer record');
    this.d.emit('incident.resolved', resolved);
    this.d.notifier.notify(incidentNotification('incident.resolved', resolved, target, note));
    await this.d.store.archive(incident.target_id);
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
