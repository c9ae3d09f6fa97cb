import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { isWrongLastSequence } from '../store/incident-store.js';
import { digestNotification, type DigestSummary } from '../notify/notification.js';
import type { Notifier } from '../notify/notifier.js';

/** The newest digest period sent, by any monitor: `{ period, at }`. */
export const DIGEST_LAST_KEY = 'digest-last';

/**
 * The periodic digest. Its period is on the wall clock on purpose: a digest is read by a
 * person, who expects it at the clock's boundaries ("every day at 00:00 UTC"), not some
 * interval after whichever monitor happened to start first. Clocks only decide *when*
 * a monitor tries; *who* sends is decided in KV, where no clock is compared:
 *
 * every monitor wakes at each boundary of its own clock and claims the period with a
 * compare-and-set on one key holding the newest period sent. A period at or below it is
 * never sent again, so a monitor whose clock runs behind (even by more than the bucket
 * keeps a key, as the key is rewritten every period up to a day) reaches periods late and
 * finds them taken, and of monitors whose clocks
 * agree exactly one wins. A lease would add nothing (the compare-and-set is already
 * exactly-once per period) but a handover gap. A monitor that dies between claiming and
 * sending loses that one digest: at most once, never twice.
 */
export class DigestScheduler {
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private kv: KV,
    private intervalMs: number,
    private summary: () => DigestSummary,
    private notifier: Notifier,
    private log: Logger,
    private now: () => number = Date.now,
  ) {}

  start(): void {
    if (this.intervalMs <= 0) return;
    this.scheduleNext();
  }

  private scheduleNext(): void {
    if (this.stopped) return;
    const now = this.now();
    const next = (Math.floor(now / this.intervalMs) + 1) * this.intervalMs;
    this.timer = setTimeout(() => void this.fire(next), next - now + 20);
    this.timer.unref();
  }

  private async fire(boundary: number): Promise<void> {
    const period = Math.floor(boundary / this.intervalMs);
    try {
      if (!(await this.claim(period))) return;
      this.notifier.notify(digestNotification(this.summary()));
      this.log.info({ period }, 'digest sent');
    } catch (err) {
      this.log.warn({ err }, 'digest failed');
    } finally {
      this.scheduleNext();
    }
  }

  /** True when this monitor is the one to send `period` (no monitor sent it or a later one). */
  async claim(period: number): Promise<boolean> {
    const e = await this.kv.get(DIGEST_LAST_KEY);
    let last: number | undefined;
    if (e?.operation === 'PUT') {
      try {
        const p = e.json<{ period?: unknown }>().period;
        if (typeof p === 'number') last = p;
      } catch {
        // An unreadable value is overwritten below (by compare-and-set, still once).
      }
    }
    if (last !== undefined && last >= period) return false;
    const value = JSON.stringify({ period, at: new Date(this.now()).toISOString() });
    try {
      if (e?.operation === 'PUT') await this.kv.update(DIGEST_LAST_KEY, value, e.revision);
      else await this.kv.create(DIGEST_LAST_KEY, value);
      return true;
    } catch (err) {
      if (isWrongLastSequence(err) || /key exists/i.test((err as Error)?.message ?? '')) return false;
      throw err;
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
