import { KvWatchInclude, type KV } from '@nats-io/kv';

export interface KeyChange {
  key: string;
  /** The bucket's revision of this change. */
  revision: number;
  /** DEL or PURGE. */
  deleted: boolean;
}

export interface KeyWatch {
  stop(): void;
  /** Settles when the watch ends: after stop(), or when the connection goes away for good. */
  done: Promise<void>;
}

/**
 * Changes made after the watch opened, in bucket order. The initial values are the
 * caller's business (it lists them once), so a watch opened before that listing misses nothing.
 */
export async function watchUpdates(kv: KV, key: string | undefined, onChange: (c: KeyChange) => void): Promise<KeyWatch> {
  const it = await kv.watch({ include: KvWatchInclude.UpdatesOnly, ...(key ? { key } : {}) });
  const done = (async () => {
    for await (const e of it) onChange({ key: e.key, revision: e.revision, deleted: e.operation !== 'PUT' });
  })();
  return { stop: () => it.stop(), done };
}
