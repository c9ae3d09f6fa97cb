import type { NotificationChannel } from './notifier.js';
import type { Notification } from './notification.js';

export interface WebhookOptions {
  maxAttempts: number;
  backoffMs: number;
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const retryable = (status: number) => status === 408 || status === 429 || status >= 500;

/** JSON POST to each URL; network errors, 408, 429 and 5xx are retried with backoff. */
export class WebhookChannel implements NotificationChannel {
  readonly name = 'webhook';
  constructor(
    private urls: string[],
    private opts: WebhookOptions,
  ) {}

  async send(n: Notification): Promise<void> {
    const failures: string[] = [];
    await Promise.all(
      this.urls.map(async (url) => {
        const err = await this.post(url, n);
        if (err) failures.push(`${new URL(url).host}: ${err}`);
      }),
    );
    if (failures.length) throw new Error(`webhook delivery failed: ${failures.join('; ')}`);
  }

  private async post(url: string, n: Notification): Promise<string | undefined> {
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
    let last = 'not tried';
    for (let attempt = 1; attempt <= this.opts.maxAttempts; attempt++) {
      try {
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'user-agent': 'droplet-mesh-health-monitor' },
          body: JSON.stringify({ event: n.kind, subject: n.subject, ...n.data, sent_at: new Date().toISOString(), attempt }),
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return undefined;
        last = `HTTP ${res.status}`;
        if (!retryable(res.status)) return last;
      } catch (err) {
        last =
          (err as Error).name === 'TimeoutError'
            ? 'timeout'
            : ((err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message);
      }
      if (attempt < this.opts.maxAttempts) await sleep(this.opts.backoffMs * 2 ** (attempt - 1));
    }
    return `${last} after ${this.opts.maxAttempts} attempts`;
  }
}
