import type { KV } from '@nats-io/kv';
import type { Logger } from '@droplet-mesh/udc-kit';
import type { StoredRecord } from './records.js';

const keyOf = (id: string) => `droplets.${id}`;
const claimKeyOf = (id: string) => `claims.${id}`;

/**
 * An id that once registered as itself (with the admin key or its own droplet key). The
 * claim outlives the record: while the droplet is away, no other droplet may register
 * its id, and its own key (kept here) still brings it back.
 */
export interface Claim {
  id: string;
  /** The droplet key's hash; dropped when an admin removes the record (the key ends with it). */
  key_hash?: string;
  claimed_at: string;
}

/**
 * Droplet records in a JetStream KV bucket, with an in-memory view kept current by a
 * watch, so reads cost nothing and every replica answers the same.
 */
export class RecordStore {
  private view = new Map<string, { record: StoredRecord; revision: number }>();
  private claims = new Map<string, { claim: Claim; revision: number }>();
  private stopWatch?: () => void;
  constructor(
    private kv: KV,
    private logger: Logger,
  ) {}

  async init(): Promise<void> {
    const w = await this.kv.watch({ key: '>' });
    this.stopWatch = () => w.stop();
    let initialDone!: () => void;
    const initial = new Promise<void>((r) => (initialDone = r));
    void (async () => {
      for await (const e of w) {
        if (e.key.startsWith('claims.')) {
          const id = e.key.slice('claims.'.length);
          const cur = this.claims.get(id);
          if (!cur || cur.revision < e.revision) {
            if (e.operation === 'PUT') this.claims.set(id, { claim: e.json<Claim>(), revision: e.revision });
            else this.claims.delete(id);
          }
          if (e.delta === 0) initialDone();
          continue;
        }
        if (!e.key.startsWith('droplets.')) {
          if (e.delta === 0) initialDone();
          continue;
        }
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

  get size(): number {
    return this.view.size;
  }

  claimOf(id: string): Claim | undefined {
    return this.claims.get(id)?.claim;
  }

  /**
   * Whether `id` has registered as itself: a claim, or (records saved before claims
   * existed) a record that is its own steward and holds a droplet key.
   */
  isClaimed(id: string): boolean {
    const r = this.get(id);
    return this.claims.has(id) || (!!r && r.steward === r.id && !!r.key_hash);
  }

  /** The droplet key hash that identifies `id`: its record's, or its claim's while the record is absent. */
  keyHashOf(id: string): string | undefined {
    return this.get(id)?.key_hash ?? this.claimOf(id)?.key_hash;
  }

  async putClaim(claim: Claim): Promise<void> {
    const rev = await this.kv.put(claimKeyOf(claim.id), JSON.stringify(claim));
    const cur = this.claims.get(claim.id);
    if (!cur || cur.revision < rev) this.claims.set(claim.id, { claim, revision: rev });
  }

  async deleteClaim(id: string): Promise<void> {
    await this.kv.delete(claimKeyOf(id));
    this.claims.delete(id);
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
