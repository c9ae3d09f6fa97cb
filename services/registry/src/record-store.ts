import type { KV } from '@nats-io/kv';
import type { Logger } from '@droplet-mesh/udc-kit';
import type { StoredRecord } from './records.js';

const keyOf = (id: string) => `droplets.${id}`;

/**
 * Droplet records in a JetStream KV bucket, with an in-memory view kept current by a
 * watch, so reads cost nothing and every replica answers the same.
 */
export class RecordStore {
  private view = new Map<string, { record: StoredRecord; revision: number }>();
  private stopWatch?: () => void;
  constructor(
    private kv: KV,
    private logger: Logger,
  ) {}

  async init(): Promise<void> {
    const w = await this.kv.watch({ key: 'droplets.>' });
    this.stopWatch = () => w.stop();
    let initialDone!: () => void;
    const initial = new Promise<void>((r) => (initialDone = r));
    void (async () => {
      for await (const e of w) {
        const id = e.key.slice('droplets.'.length);
        if (e.operation === 'PUT') {
          const cur = this.view.get(id);
          if (!cur || cur.revision < e.revision) this.view.set(id, { record: e.json<StoredRecord>(), revision: e.revision });
        } else {
          const cur = this.view.get(id);
          if (!cur || cur.revision < e.revision) this.view.delete(id);
        }
        if (e.delta === 0) initialDone();
      }
    })();
    // An empty bucket delivers nothing: don't wait for an initial batch that never comes.
    const status = await this.kv.status();
    if (status.values === 0) initialDone();
    await Promise.race([initial, new Promise((r) => setTimeout(r, 10_000))]);
  }

  get(id: string): StoredRecord | undefined {
    return this.view.get(id)?.record;
  }

  all(): StoredRecord[] {
    return [...this.view.values()].map((v) => v.record);
  }

  /** Create, or update only if the stored revision is still the one we read. */
  async put(record: StoredRecord, expect?: 'create' | number): Promise<number> {
    const data = JSON.stringify(record);
    const rev =
      expect === 'create'
        ? await this.kv.create(keyOf(record.id), data)
        : typeof expect === 'number'
          ? await this.kv.update(keyOf(record.id), data, expect)
          : await this.kv.put(keyOf(record.id), data);
    const cur = this.view.get(record.id);
    if (!cur || cur.revision < rev) this.view.set(record.id, { record, revision: rev });
    return rev;
  }

  revisionOf(id: string): number | undefined {
    return this.view.get(id)?.revision;
  }

  /** Apply `change` with compare-and-set; returns the new record, or undefined when another writer won. */
  async update(id: string, change: (r: StoredRecord) => StoredRecord): Promise<StoredRecord | undefined> {
    const cur = this.view.get(id);
    if (!cur) return undefined;
    const next = change(cur.record);
    try {
      await this.put(next, cur.revision);
      return next;
    } catch {
      const e = await this.kv.get(keyOf(id));
      if (e && e.operation === 'PUT') this.view.set(id, { record: e.json<StoredRecord>(), revision: e.revision });
      this.logger.debug({ id }, 'record changed under us; another replica won');
      return undefined;
    }
  }

  async delete(id: string): Promise<void> {
    await this.kv.delete(keyOf(id));
    this.view.delete(id);
  }

  stop(): void {
    this.stopWatch?.();
  }
}
