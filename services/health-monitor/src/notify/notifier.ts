import type { Logger } from 'pino';
import type { Notification } from './notification.js';

export interface NotificationChannel {
  readonly name: string;
  send(n: Notification): Promise<void>;
}

export interface DeliveryResult {
  channel: string;
  ok: boolean;
  error?: string;
}

/**
 * Fans a notification out to every channel. It never throws and callers do not wait
 * for it: a dead SMTP server must not hold up recovery.
 */
export class Notifier {
  private pending = new Set<Promise<unknown>>();
  /** Why a notification is held back (an acknowledged incident, a silenced target), or undefined to send it. */
  private hold: (n: Notification) => string | undefined = () => undefined;
  constructor(
    private channels: NotificationChannel[],
    private log: Logger,
  ) {}

  setHold(hold: (n: Notification) => string | undefined): void {
    this.hold = hold;
  }

  notify(n: Notification): void {
    const why = this.hold(n);
    if (why) {
      this.log.info({ kind: n.kind, subject: n.subject, held: why }, 'notification held back');
      return;
    }
    const p = this.deliver(n).finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  async deliver(n: Notification): Promise<DeliveryResult[]> {
    const results = await Promise.all(
      this.channels.map(async (c): Promise<DeliveryResult> => {
        try {
          await c.send(n);
          this.log.info({ channel: c.name, kind: n.kind, subject: n.subject }, 'notification sent');
          return { channel: c.name, ok: true };
        } catch (err) {
          const error = (err as Error).message;
          this.log.warn({ channel: c.name, kind: n.kind, error }, 'notification failed');
          return { channel: c.name, ok: false, error };
        }
      }),
    );
    return results;
  }

  /** Wait (bounded) for notifications in flight, e.g. at shutdown. */
  async settle(timeoutMs = 5000): Promise<void> {
    await Promise.race([Promise.allSettled([...this.pending]), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
