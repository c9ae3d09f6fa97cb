import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { isWrongLastSequence } from '../store/incident-store.js';
import { digestNotification, type DigestSummary } from '../notify/notification.js';
import type { Notifier } from '../notify/notifier.js';

/**
 * The periodic digest. Every monitor wakes at each period boundary; creating the
 * period's key in KV decides which one of them sends it.
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
      await this.kv.create(`digest-${period}`, JSON.stringify({ at: new Date(this.now()).toISOString() }));
      this.notifier.notify(digestNotification(this.summary()));
      this.log.info({ period }, 'digest sent');
    } catch (err) {
      if (!isWrongLastSequence(err)) this.log.warn({ err }, 'digest failed');
    } finally {
      this.scheduleNext();
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
