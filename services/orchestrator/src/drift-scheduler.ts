import { KvLease, type Logger } from '@droplet-mesh/udc-kit';
import type { KV } from '@nats-io/kv';

/** The lease key in the orchestrator's bucket (no stack key starts with it: those are `stack.`, `drift.`, `lease.`…). */
export const DRIFT_LEASE = 'drift-leader';

/**
 * The periodic drift check runs on one orchestrator replica only: the one holding the
 * `drift-leader` lease (udc-kit KvLease: KV revisions and each replica's monotonic clock,
 * never wall clocks compared across machines). Every replica contends; the holder renews
 * every third of the lease's ttl, so another takes over within about a ttl of its death.
 * Without it each replica checked every stack and `stack.drifted` went out once per replica.
 */
export class DriftScheduler {
  private readonly lease: KvLease;
  private readonly ttlMs: number;
  private checkTimer?: NodeJS.Timeout;
  private leaseTimer?: NodeJS.Timeout;
  private busy = false;
  private stopped = false;

  constructor(
    kv: KV,
    holder: string,
    private readonly intervalMs: number,
    private readonly check: () => Promise<unknown>,
    private readonly logger: Logger,
    monotonic?: () => number,
  ) {
    // Long enough to outlast a renewal missed under load; short enough that a replica's death costs at most about one check.
    this.ttlMs = Math.min(60_000, Math.max(3_000, 2 * intervalMs));
    this.lease = new KvLease(kv, { holder, ttlMs: this.ttlMs, monotonic });
  }

  start(): void {
    if (this.intervalMs <= 0) return;
    void this.contend();
    this.leaseTimer = setInterval(() => void this.contend(), Math.floor(this.ttlMs / 3));
    this.leaseTimer.unref();
    this.checkTimer = setInterval(() => void this.tick(), this.intervalMs);
    this.checkTimer.unref();
  }

  /** Whether this replica runs the drift checks now. */
  leads(): boolean {
    return this.lease.holds(DRIFT_LEASE);
  }

  /** Take the lease when free or stale, renew it when held. */
  async contend(): Promise<boolean> {
    if (this.stopped) return false;
    try {
      return await this.lease.acquire(DRIFT_LEASE);
    } catch (err) {
      this.logger.warn({ err }, 'could not renew the drift lease');
      return false;
    }
  }

  /** One periodic check, on the leader only; true when it ran. */
  async tick(): Promise<boolean> {
    if (this.busy || this.stopped || !this.leads()) return false;
    this.busy = true;
    try {
      await this.check();
      return true;
    } catch (err) {
      this.logger.warn({ err }, 'drift check failed');
      return false;
    } finally {
      this.busy = false;
    }
  }

  /** Stop checking and hand the lease over at once (a crash leaves it to expire instead). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.checkTimer);
    clearInterval(this.leaseTimer);
    if (this.leads()) await this.lease.release(DRIFT_LEASE).catch(() => undefined);
  }
}
