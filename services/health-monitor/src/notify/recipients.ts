import type { KV } from '@nats-io/kv';
import type { Logger } from 'pino';
import { z } from 'zod';
import { type AddressPolicy, AddressRefused, KeyView } from '@droplet-mesh/udc-kit';
import type { Notification } from './notification.js';
import type { NotificationChannel } from './notifier.js';
import { WebhookChannel, type WebhookOptions } from './webhook-channel.js';
import { EmailChannel } from './email-channel.js';

/** The bucket of notification settings set over the API (the env's ALERT_* recipients stay as they are). */
export const SETTINGS_BUCKET = 'health-monitor-settings';
const PREFIX = 'recipients.';

/** Who set a recipient list (e.g. `stack-shop`): each owner replaces and removes only its own. */
export const ownerSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be 1-63 of [a-z0-9-]');

export const recipientsInput = z.strictObject({
  emails: z.array(z.email()).max(50).default([]),
  webhooks: z
    .array(z.url({ protocol: /^https?$/ }).max(2000))
    .max(20)
    .default([]),
});
export type RecipientsInput = z.infer<typeof recipientsInput>;
export interface Recipients extends RecipientsInput {
  owner: string;
  updated_at: string;
}

const portOf = (u: URL) => Number(u.port || (u.protocol === 'https:' ? 443 : 80));

/**
 * Where a webhook may point: not link-local or cloud metadata, not the mesh's own ports on
 * this host (the address policy the health checks use). Checked when it is set and again
 * before each delivery (a name may resolve elsewhere later).
 */
export async function checkWebhook(policy: AddressPolicy, url: string, where: string): Promise<void> {
  const u = new URL(url);
  const v = await policy.check(u.hostname, portOf(u));
  if (!v.ok) throw new AddressRefused(u.hostname, portOf(u), v.reason ?? 'refused', where);
}

/** Recipient lists by owner, as JSON in the settings bucket. */
export class RecipientStore {
  constructor(private kv: KV) {}

  async list(): Promise<Recipients[]> {
    const out: Recipients[] = [];
    for (const { key } of await KeyView.of(this.kv).keys(PREFIX)) {
      const r = await this.get(key.slice(PREFIX.length));
      if (r) out.push(r);
    }
    return out.sort((a, b) => a.owner.localeCompare(b.owner));
  }
  async get(owner: string): Promise<Recipients | undefined> {
    const e = await this.kv.get(`${PREFIX}${owner}`);
    return e?.operation === 'PUT' ? e.json<Recipients>() : undefined;
  }
  async put(owner: string, input: RecipientsInput): Promise<Recipients> {
    const r: Recipients = {
      owner,
      emails: [...new Set(input.emails)].sort(),
      webhooks: [...new Set(input.webhooks)].sort(),
      updated_at: new Date().toISOString(),
    };
    await this.kv.put(`${PREFIX}${owner}`, JSON.stringify(r));
    return r;
  }
  /** False when the owner had no list. */
  async delete(owner: string): Promise<boolean> {
    if (!(await this.get(owner))) return false;
    await this.kv.delete(`${PREFIX}${owner}`);
    return true;
  }
  async close(): Promise<void> {
    await KeyView.of(this.kv).stop();
  }
}

/**
 * Delivers to every list set over the API, read at each notification (every replica sees
 * the same lists): webhooks through the address policy, emails through SMTP_URL.
 */
export class RecipientsChannel implements NotificationChannel {
  readonly name = 'recipients';
  constructor(
    private store: () => Promise<RecipientStore>,
    private policy: AddressPolicy,
    private webhook: WebhookOptions,
    private email: { smtpUrl?: string; from: string },
    private log: Logger,
  ) {}

  async send(n: Notification): Promise<void> {
    const lists = await (await this.store()).list();
    const webhooks = [...new Set(lists.flatMap((l) => l.webhooks))];
    const emails = [...new Set(lists.flatMap((l) => l.emails))];
    const failures: string[] = [];
    const allowed: string[] = [];
    for (const url of webhooks) {
      try {
        await checkWebhook(this.policy, url, 'webhook');
        allowed.push(url);
      } catch (err) {
        failures.push(`${new URL(url).host}: ${(err as Error).message}`);
      }
    }
    if (allowed.length > 0) await new WebhookChannel(allowed, this.webhook).send(n).catch((err: Error) => failures.push(err.message));
    if (emails.length > 0) {
      if (!this.email.smtpUrl) failures.push('emails: no SMTP_URL configured');
      else {
        const mail = new EmailChannel(this.email.smtpUrl, this.email.from, emails);
        await mail
          .send(n)
          .catch((err: Error) => failures.push(`email: ${err.message}`))
          .finally(() => mail.close());
      }
    }
    if (failures.length > 0) {
      this.log.warn({ failures }, 'some recipients set over the API were not reached');
      throw new Error(failures.join('; '));
    }
  }
}
