import { z } from 'zod';
import { InvalidRequest, NotFound, paginate, paginationQuery, type AddressPolicy, type Api } from '@droplet-mesh/udc-kit';
import { checkWebhook, ownerSchema, recipientsInput, type RecipientStore } from '../notify/recipients.js';

export interface NotificationRouteDeps {
  recipients: () => Promise<RecipientStore>;
  webhookPolicy: AddressPolicy;
  /** Emails go out only through SMTP_URL. */
  smtpConfigured: boolean;
}

const params = z.object({ owner: ownerSchema });

/** Notification recipients set over the API (e.g. by the orchestrator for a stack's `alerts:`), beside ALERT_EMAIL_TO/ALERT_WEBHOOK_URLS. */
export function registerNotificationRoutes(api: Api, deps: NotificationRouteDeps): void {
  api.get(
    '/notifications/recipients',
    // write, not read: a webhook URL may carry its credential (Slack-style paths).
    { scope: 'write', summary: 'Recipient lists set over the API, by owner', query: paginationQuery, tags: ['notifications'] },
    async ({ query }) => paginate(await (await deps.recipients()).list(), query),
  );
  api.get(
    '/notifications/recipients/:owner',
    { scope: 'write', summary: "One owner's recipient list", params, tags: ['notifications'] },
    async ({ params: p }) => {
      const r = await (await deps.recipients()).get(p.owner);
      if (!r) throw new NotFound(`no recipients set by '${p.owner}'`);
      return r;
    },
  );
  api.put(
    '/notifications/recipients/:owner',
    {
      scope: 'write',
      summary: "Set an owner's emails and webhooks (replaces its list); every notification reaches them too",
      params,
      body: recipientsInput,
      tags: ['notifications'],
    },
    async ({ params: p, body }) => {
      if (body.emails.length > 0 && !deps.smtpConfigured)
        throw new InvalidRequest('emails need SMTP_URL on the health-monitor', {
          fields: [{ path: 'emails', message: 'no SMTP_URL configured: give webhooks only, or configure SMTP_URL' }],
        });
      for (const [i, url] of body.webhooks.entries()) await checkWebhook(deps.webhookPolicy, url, `webhooks.${i}`);
      return (await deps.recipients()).put(p.owner, body);
    },
  );
  api.delete(
    '/notifications/recipients/:owner',
    { scope: 'write', summary: "Remove an owner's recipient list", params, tags: ['notifications'] },
    async ({ params: p }) => {
      if (!(await (await deps.recipients()).delete(p.owner))) throw new NotFound(`no recipients set by '${p.owner}'`);
    },
  );
}
