import type { Logger } from 'pino';
import { Conflict, DependencyUnavailable, NotFound, type MessageReply } from '@droplet-mesh/udc-kit';
import { initialRecovery, stepApplies } from '../domain/recovery-plan.js';
import { appendTimeline, type Incident, type RecoveryStep, type Silence, type Target } from '../domain/types.js';
import type { Notification } from '../notify/notification.js';
import type { IncidentStore } from '../store/incident-store.js';
import { recoveryRequest, type RecoveryRequest } from './recovery-worker.js';

export interface IncidentActionDeps {
  monitorId: string;
  store: IncidentStore;
  target: (targetId: string) => Target | undefined;
  send: (req: RecoveryRequest) => Promise<MessageReply>;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  requestTimeoutMs: number;
  log: Logger;
  now: () => number;
}

export type ManualStep = Exclude<RecoveryStep, 'alert'>;

/** What a person does to an incident: acknowledge it, silence its target for a while, run a recovery step now. */
export class IncidentActions {
  constructor(private d: IncidentActionDeps) {}

  private at(): string {
    return new Date(this.d.now()).toISOString();
  }

  private async active(id: string): Promise<Incident> {
    const incident = await this.d.store.get(id);
    if (!incident) throw new NotFound(`no incident '${id}'`);
    if (incident.status === 'resolved') throw new Conflict(`incident '${id}' is resolved`, { resolved_at: incident.resolved_at });
    return incident;
  }

  /**
   * Why a notification is held back: the target is silenced (every incident notification),
   * or the incident is acknowledged (everything but its resolution). Digests always go.
   */
  hold(n: Notification): string | undefined {
    if (n.kind === 'digest') return undefined;
    const incident = n.data.incident as Incident | undefined;
    if (!incident) return undefined;
    const silence = this.d.store.silenceFor(incident.target_id, this.d.now());
    if (silence) return `target silenced until ${silence.until}`;
    if (n.kind === 'incident.resolved') return undefined;
    const current = this.d.store.openFor(incident.target_id);
    const acked = current?.id === incident.id ? current.acknowledged_at : incident.acknowledged_at;
    return acked ? `incident acknowledged at ${acked}` : undefined;
  }

  /**
   * Another droplet's step on the open incident of `targetId`, on its timeline (the deployer
   * moving a lost server's replicas). Undefined when the target has no open incident.
   */
  async note(targetId: string, event: string, by: string, detail?: Record<string, unknown>): Promise<Incident | undefined> {
    const at = this.at();
    return this.d.store.update(targetId, (i) =>
      i.status === 'resolved' ? undefined : appendTimeline(i, { at, event, by, ...(detail ? { detail } : {}) }),
    );
  }

  /** Acknowledge an open incident (idempotent: a second acknowledgement changes nothing). */
  async acknowledge(id: string, by: string, note?: string): Promise<Incident> {
    const incident = await this.active(id);
    if (incident.acknowledged_at) return incident;
    const at = this.at();
    const updated = await this.d.store.update(incident.target_id, (i) =>
      i.id !== id || i.status === 'resolved' || i.acknowledged_at
        ? undefined
        : appendTimeline(
            { ...i, acknowledged_at: at, acknowledged_by: by },
            { at, event: 'acknowledged', by, ...(note ? { detail: { note } } : {}) },
          ),
    );
    if (!updated) {
      const now = await this.d.store.get(id);
      if (now?.acknowledged_at) return now;
      throw new Conflict(`incident '${id}' changed while it was acknowledged (resolved?): look again`);
    }
    this.d.log.info({ incident_id: id, by }, 'incident acknowledged');
    this.d.emit('incident.acknowledged', { incident_id: id, target_id: updated.target_id, by, note });
    return updated;
  }

  /** Hold back every notification about a target for `seconds` (replacing any silence it had). */
  async silence(targetId: string, seconds: number, by: string, reason?: string): Promise<Silence> {
    const now = this.d.now();
    const s: Silence = {
      target_id: targetId,
      until: new Date(now + seconds * 1000).toISOString(),
      by,
      created_at: new Date(now).toISOString(),
      ...(reason ? { reason } : {}),
    };
    await this.d.store.putSilence(s);
    await this.d.store.update(targetId, (i) =>
      i.status === 'resolved'
        ? undefined
        : appendTimeline(i, { at: s.created_at, event: 'silenced', by, detail: { until: s.until, ...(reason ? { reason } : {}) } }),
    );
    this.d.log.info({ target_id: targetId, until: s.until, by }, 'target silenced');
    this.d.emit('target.silenced', s);
    return s;
  }

  silences(): Silence[] {
    return this.d.store.silences(this.d.now());
  }

  async unsilence(targetId: string, by: string): Promise<void> {
    if (!(await this.d.store.deleteSilence(targetId, this.d.now()))) throw new NotFound(`target '${targetId}' is not silenced`);
    const at = this.at();
    await this.d.store.update(targetId, (i) => (i.status === 'resolved' ? undefined : appendTimeline(i, { at, event: 'unsilenced', by })));
    this.d.emit('target.unsilenced', { target_id: targetId, by });
  }

  /**
   * Run one recovery step now, whatever the backoff or an exhausted policy say (the first
   * step of the policy that applies when none is named). `resume` starts the automatic
   * policy over afterwards. A step the downstream droplet refuses is a 502 naming why.
   */
  async recover(
    id: string,
    by: string,
    opts: { step?: ManualStep; resume?: boolean } = {},
  ): Promise<{ incident: Incident; step: ManualStep; result: string }> {
    const incident = await this.active(id);
    const target = this.d.target(incident.target_id);
    const step = opts.step ?? (incident.recovery.policy.find((s) => s !== 'alert' && stepApplies(s, target)) as ManualStep | undefined);
    if (!step)
      throw new Conflict(`no recovery step applies to '${incident.target_id}' (policy ${incident.recovery.policy.join(', ')})`, {
        policy: incident.recovery.policy,
      });
    if (!stepApplies(step, target))
      throw new Conflict(
        step === 'restart'
          ? `'${incident.target_id}' is a host: the deployer restarts services, not machines`
          : `'${incident.target_id}' names no provider and instance_id to reboot`,
      );
    const at = this.at();
    await this.d.store.update(incident.target_id, (i) =>
      i.id !== id ? undefined : appendTimeline(i, { at, event: `${step}.requested`, by, detail: { manual: true } }),
    );
    const req = recoveryRequest(step, incident, target, by, this.d.requestTimeoutMs);
    let outcome: { event: string; detail: Record<string, unknown>; error?: string };
    try {
      const reply = await this.d.send(req);
      outcome =
        reply.result === 'error'
          ? {
              event: `${step}.failed`,
              detail: { manual: true, error: reply.error?.code, message: reply.error?.message },
              error: reply.error?.message ?? 'refused',
            }
          : { event: `${step}.accepted`, detail: { manual: true, result: reply.result } };
    } catch (err) {
      outcome = { event: `${step}.failed`, detail: { manual: true, error: (err as Error).message }, error: (err as Error).message };
    }
    const doneAt = this.at();
    const updated = await this.d.store.update(incident.target_id, (i) => {
      if (i.id !== id) return undefined;
      const next = appendTimeline(i, { at: doneAt, event: outcome.event, by, detail: outcome.detail });
      return opts.resume && !outcome.error
        ? appendTimeline({ ...next, recovery: initialRecovery(i.recovery.policy) }, { at: doneAt, event: 'recovery.resumed', by })
        : next;
    });
    this.d.log.info({ incident_id: id, step, by, ...outcome.detail }, outcome.event);
    this.d.emit('incident.recovery.manual', { incident_id: id, target_id: incident.target_id, step, by, event: outcome.event });
    if (outcome.error)
      throw new DependencyUnavailable(
        `${step} of '${incident.target_id}' failed: ${outcome.error}`,
        { incident_id: id, step, target: req.target },
        502,
      );
    return { incident: updated ?? (await this.d.store.get(id)) ?? incident, step, result: 'accepted' };
  }
}
