import type { LivenessStatus } from '@droplet-mesh/registry-client';
import type { Logger } from '@droplet-mesh/udc-kit';
import { nextLivenessState, transitionEvent, type LivenessRules } from './liveness.js';
import { isSelfRegistered, publicRecord, type StoredRecord } from './records.js';
import type { RecordStore } from './record-store.js';

export interface HeartbeatInput {
  status?: string;
  metrics?: Record<string, unknown>;
}

/**
 * Last-seen times live in memory (every replica hears every heartbeat on NATS); the
 * stored status changes only on a transition, written with compare-and-set so exactly
 * one replica emits each event.
 */
export class LivenessMonitor {
  private lastSeen = new Map<string, number>();
  /** What each droplet said about itself in its last heartbeat (kept in memory, like last-seen). */
  private lastReport = new Map<string, HeartbeatInput>();
  private timer?: NodeJS.Timeout;
  private readonly startedAt: number;

  constructor(
    private store: RecordStore,
    private rules: LivenessRules & { tickMs: number; defaultIntervalS: number },
    private emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void,
    private logger: Logger,
    private now: () => number = Date.now,
    /** Told of every heartbeat of a known droplet, with its send-to-record lag when the sender stamped it. */
    private onHeartbeat: (lagMs: number | undefined) => void = () => {},
  ) {
    this.startedAt = now();
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.rules.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  lastSeenOf(id: string): number | undefined {
    return this.lastSeen.get(id);
  }

  lastReportOf(id: string): HeartbeatInput | undefined {
    return this.lastReport.get(id);
  }

  /** A record's last-seen time; after a registry restart, a grace period starts from our own start. */
  private effectiveLastSeen(r: StoredRecord): number {
    const stored = r.last_heartbeat_at ? Date.parse(r.last_heartbeat_at) : Date.parse(r.registered_at);
    return this.lastSeen.get(r.id) ?? Math.max(stored, this.startedAt);
  }

  /** Returns false when the id is unknown. */
  async heartbeat(id: string, input: HeartbeatInput = {}, sentAtMs?: number): Promise<boolean> {
    const r = this.store.get(id);
    if (!r) return false;
    const at = this.now();
    this.lastSeen.set(id, at);
    if (input.status !== undefined || input.metrics !== undefined)
      this.lastReport.set(id, { status: input.status, metrics: input.metrics });
    this.onHeartbeat(sentAtMs ? at - sentAtMs : undefined);
    if (r.status !== 'active') await this.transition(r, 'active', input);
    return true;
  }

  forget(id: string): void {
    this.lastSeen.delete(id);
    this.lastReport.delete(id);
  }

  private async transition(r: StoredRecord, to: LivenessStatus, input: HeartbeatInput = {}): Promise<void> {
    const from = r.status;
    const lastSeen = this.lastSeen.get(r.id);
    const updated = await this.store.update(r.id, (cur) => ({
      ...cur,
      status: to,
      updated_at: new Date(this.now()).toISOString(),
      ...(lastSeen ? { last_heartbeat_at: new Date(lastSeen).toISOString() } : {}),
      ...(input.status ? { last_reported_status: input.status } : {}),
    }));
    const event = transitionEvent(from, to);
    if (updated && event) {
      this.logger.info({ droplet_id: r.id, from, to }, 'liveness changed');
      this.emit(event, { droplet: publicRecord(updated), from, to }, to === 'active' ? 'info' : to === 'stale' ? 'warn' : 'error');
    }
  }

  async tick(): Promise<void> {
    const now = this.now();
    for (const r of this.store.all()) {
      if (!isSelfRegistered(r)) continue;
      const next = nextLivenessState(this.effectiveLastSeen(r), r.heartbeat_interval_s ?? this.rules.defaultIntervalS, now, this.rules);
      // Recovery happens on a heartbeat, never on a tick.
      if (next !== r.status && next !== 'active') {
        try {
          await this.transition(r, next);
        } catch (err) {
          this.logger.warn({ err, droplet_id: r.id }, 'liveness update failed');
        }
      }
    }
  }
}
