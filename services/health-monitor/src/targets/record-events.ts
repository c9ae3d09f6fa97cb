import type { Bus } from '@droplet-mesh/udc-kit';
import { checkAddress, type Target } from '../domain/types.js';

/**
 * The registry's record events (udc-kit publishes `<droplet>.<type>`): a new record, or an
 * existing one whose address or metadata changed (a redeploy). Only the registry may
 * publish under `registry.` (NATS authorization), and the event only says "read this id":
 * the record itself is read fresh over HTTP, through the same address policy as listings.
 */
export const RECORD_CHANGED_SUBJECTS = ['registry.droplet.registered', 'registry.droplet.updated'] as const;

/**
 * Follow record changes as they happen instead of waiting for the next listing
 * (TARGET_REFRESH_MS): a redeployed app's monitors move to its new address at once,
 * before the deployer stops the old one.
 */
export function followRecordEvents(nc: Bus['nc'], reread: (id: string) => Promise<unknown>): Array<ReturnType<Bus['nc']['subscribe']>> {
  return RECORD_CHANGED_SUBJECTS.map((subject) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let id: unknown;
        try {
          id = msg.json<{ droplet?: { id?: unknown } }>().droplet?.id;
        } catch {
          return;
        }
        if (typeof id === 'string' && id.length > 0 && id.length <= 200) void reread(id).catch(() => undefined);
      },
    }),
  );
}

/**
 * What makes a target "the same thing" for an incident about it: where it is checked and
 * which deployment answers there. Not `updated_at`: the registry also bumps that when a
 * record's liveness changes, which is no redeploy.
 */
export function targetRevision(t: Target): string {
  const deployment = t.metadata?.deployment_id;
  return typeof deployment === 'string' ? `${checkAddress(t)} ${deployment}` : checkAddress(t);
}
