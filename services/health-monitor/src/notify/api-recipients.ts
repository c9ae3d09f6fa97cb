import { AddressPolicy, type Bus } from '@droplet-mesh/udc-kit';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { NotificationRouteDeps } from '../routes/notifications.js';
import { RecipientsChannel, RecipientStore, SETTINGS_BUCKET } from './recipients.js';

/**
 * Recipient lists set over the API: the routes, the channel that delivers to them, and the
 * store both read (its bucket opened on first use, after the droplet has its bus).
 */
export function apiRecipients(droplet: () => { bus: Bus; config: Config; logger: Logger }) {
  let store: Promise<RecipientStore> | undefined;
  const recipients = () => {
    store ??= droplet()
      .bus.kv(SETTINGS_BUCKET, { history: 1 })
      .then((kv) => new RecipientStore(kv));
    store.catch(() => {
      store = undefined;
    });
    return store;
  };
  let policy: AddressPolicy | undefined;
  // The health checks' rules: CHECK_ALLOW for exceptions, the mesh's ports and this droplet's own refused on loopback.
  const webhookPolicy = () => {
    const c = droplet().config;
    policy ??= new AddressPolicy({ allow: c.CHECK_ALLOW, extraLoopbackPorts: c.PORT > 0 ? [c.PORT] : [] });
    return policy;
  };
  const routes: NotificationRouteDeps = {
    recipients,
    get webhookPolicy() {
      return webhookPolicy();
    },
    get smtpConfigured() {
      return !!droplet().config.SMTP_URL;
    },
  };
  return {
    routes,
    channel: () => {
      const c = droplet().config;
      return new RecipientsChannel(
        recipients,
        webhookPolicy(),
        { maxAttempts: c.WEBHOOK_MAX_ATTEMPTS, backoffMs: c.WEBHOOK_BACKOFF_MS },
        { smtpUrl: c.SMTP_URL, from: c.ALERT_EMAIL_FROM },
        droplet().logger,
      );
    },
    async close() {
      if (store) await (await store.catch(() => undefined))?.close();
    },
  };
}
