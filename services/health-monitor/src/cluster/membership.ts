import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';

export interface MemberRecord {
  id: string;
  /** Where this monitor's HTTP API answers (peers use its /health as a control check). */
  url: string;
  started_at: string;
}

/**
 * The live set of monitors. Each monitor puts its record in a KV bucket every
 * heartbeat; a member not heard from within the TTL has left (kill -9 leaves no
 * goodbye, and expiry in the bucket sends no watch event, so we time members out
 * ourselves). A clean stop deletes the record so peers rebalance at once.
 *
 * "Heard from" is when this monitor *received* the record, on its own monotonic clock:
 * never the record's server timestamp, which comes from another machine's clock.
 */
export class Membership {
  private seen = new Map<string, { record: MemberRecord; at: number }>();
  private timer?: NodeJS.Timeout;
  private watcher?: { stop(): void };
  private listeners: Array<(members: string[]) => void> = [];
  private lastIds = '';

  constructor(
    private kv: KV,
    private self: MemberRecord,
    private opts: { heartbeatMs: number; ttlMs: number },
    private log: Logger,
    private now: () => number = () => performance.now(),
  ) {}

  async start(): Promise<void> {
    await this.beat();
    const iter = await this.kv.watch({ key: '>' });
    this.watcher = iter;
    void (async () => {
      for await (const e of iter) {
        if (e.operation === 'PUT') {
          try {
            const record = e.json<MemberRecord>();
            // Replayed history counts as heard now: a member that died just before we started
            // stays listed for one TTL, rather than trusting another machine's clock.
            this.seen.set(record.id, { record, at: this.now() });
          } catch {
            this.log.warn({ key: e.key }, 'ignoring a malformed member record');
          }
        } else {
          this.seen.delete(e.key);
        }
        this.notifyIfChanged();
      }
    })().catch((err) => this.log.warn({ err }, 'membership watch ended'));
    this.timer = setInterval(() => {
      void this.beat().catch((err) => this.log.warn({ err }, 'membership heartbeat failed'));
      this.notifyIfChanged();
    }, this.opts.heartbeatMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    await this.kv.put(this.self.id, JSON.stringify(this.self));
  }

  /** Live member ids, sorted; this monitor is always one of them while it runs. */
  members(): string[] {
    const cutoff = this.now() - this.opts.ttlMs;
    const ids = new Set([this.self.id]);
    for (const [id, s] of this.seen) if (s.at >= cutoff) ids.add(id);
    return [...ids].sort();
  }

  records(): MemberRecord[] {
    const live = new Set(this.members());
    return [...this.seen.values()].map((s) => s.record).filter((r) => live.has(r.id));
  }

  peerUrls(): string[] {
    return this.records()
      .filter((r) => r.id !== this.self.id)
      .map((r) => new URL('/health', r.url).toString());
  }

  onChange(fn: (members: string[]) => void): void {
    this.listeners.push(fn);
  }

  private notifyIfChanged(): void {
    const ids = this.members();
    const key = ids.join(',');
    if (key === this.lastIds) return;
    this.lastIds = key;
    this.log.info({ members: ids }, 'monitor membership changed');
    for (const fn of this.listeners) fn(ids);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.watcher?.stop();
    await this.kv.delete(this.self.id).catch(() => undefined);
  }
}
