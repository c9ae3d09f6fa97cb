import type { Bus } from '@droplet-mesh/udc-kit';
import { checkAddress, type Target } from '../domain/types.js';
import type { Reread } from './target-directory.js';

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
export function followRecordEvents(nc: Bus['nc'], reread: (id: string) => Promise<Reread>): Array<ReturnType<Bus['nc']['subscribe']>> {
  return RECORD_CHANGED_SUBJECTS.map((subject) =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return;
        let droplet: { id?: unknown; updated_at?: unknown } | undefined;
        try {
          droplet = msg.json<{ droplet?: { id?: unknown; updated_at?: unknown } }>().droplet;
        } catch {
          return;
        }
        const id = droplet?.id;
        if (typeof id !== 'string' || id.length === 0 || id.length > 200) return;
        const updatedAt = typeof droplet?.updated_at === 'string' ? droplet.updated_at : undefined;
        void readUntilCurrent(id, updatedAt, reread).catch(() => undefined);
      },
    }),
  );
}

/**
 * A registry replica other than the one that wrote the record may answer the read a moment
 * before its own view has the write: read again (briefly) until the record is as new as the event.
 */
async function readUntilCurrent(id: string, updatedAt: string | undefined, reread: (id: string) => Promise<Reread>): Promise<void> {
  for (let attempt = 0; attempt < 4; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, 250 * attempt).unref());
    const r = await reread(id);
    // Gone (a lagging replica that has not seen a new record yet) also reads again.
    const seen = r.kind === 'gone' ? undefined : r.target?.updated_at;
    if (!updatedAt || (seen && seen >= updatedAt)) return;
  }
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
