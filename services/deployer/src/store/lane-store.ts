import { KvWatchInclude, type KV } from '@nats-io/kv';
import { KeyView } from './key-view.js';

/** A deploy waiting (or running) in a service's lane. */
export interface QueueEntry {
  deployment_id: string;
  owner: string;
  enqueued_at: string;
  /** The entry's KV revision: a stream sequence, so every replica sees the same order. */
  revision: number;
}

/** The right to change one service: held by its running deploy (or by a replica cleaning up after a dead one). */
export interface Lease {
  deployment_id: string;
  owner: string;
  acquired_at: string;
  expires_at: string;
}

export interface HeldLease {
  target: string;
  value: Lease;
  revision: number;
}

const isSequenceConflict = (err: unknown) => /wrong last sequence|exists/i.test((err as Error).message);

/**
 * Per-service deploy lanes in the deployer's KV bucket:
 * `lane.<target>.q.<deployment>` (queue entries, never updated, ordered by revision) and
 * `lane.<target>.lease` (create-if-absent, revision-checked renewal and release).
 */
export class LaneStore {
  constructor(private kv: KV) {}

  private entryKey = (target: string, deploymentId: string) => `lane.${target}.q.${deploymentId}`;
  private leaseKey = (target: string) => `lane.${target}.lease`;

  async enqueue(target: string, deploymentId: string, owner: string): Promise<QueueEntry> {
    const value = { deployment_id: deploymentId, owner, enqueued_at: new Date().toISOString() };
    const revision = await this.kv.create(this.entryKey(target, deploymentId), JSON.stringify(value));
    return { ...value, revision };
  }

  /** The lane in order: index 0 runs (or is about to). Keys from the watched key view, never `kv.keys()`. */
  async queue(target: string): Promise<QueueEntry[]> {
    const entries = await KeyView.of(this.kv).entries(`lane.${target}.q.`);
    return entries
      .map((e) => ({ ...e.json<Omit<QueueEntry, 'revision'>>(), revision: e.revision }))
      .sort((a, b) => a.revision - b.revision);
  }

  async dequeue(target: string, deploymentId: string): Promise<void> {
    await this.kv.purge(this.entryKey(target, deploymentId));
  }

  async lease(target: string): Promise<HeldLease | undefined> {
    const e = await this.kv.get(this.leaseKey(target));
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    return { target, value: e.json<Lease>(), revision: e.revision };
  }

  /** Take the lease: create it when absent, or replace exactly the stale one given. Undefined when someone else won. */
  async acquire(target: string, value: Lease, replacing?: HeldLease): Promise<HeldLease | undefined> {
    try {
      const data = JSON.stringify(value);
      const revision = replacing
        ? await this.kv.update(this.leaseKey(target), data, replacing.revision)
        : await this.kv.create(this.leaseKey(target), data);
      return { target, value, revision };
    } catch (err) {
      if (isSequenceConflict(err)) return undefined;
      throw err;
    }
  }

  /** Extend a held lease; undefined when it is no longer ours (taken over, or released). */
  async renew(held: HeldLease, expiresAt: string): Promise<HeldLease | undefined> {
    const value = { ...held.value, expires_at: expiresAt };
    try {
      return {
        target: held.target,
        value,
        revision: await this.kv.update(this.leaseKey(held.target), JSON.stringify(value), held.revision),
      };
    } catch (err) {
      if (isSequenceConflict(err)) return undefined;
      throw err;
    }
  }

  /** Delete the lease only if it is still the revision we hold. */
  async release(held: HeldLease): Promise<void> {
    try {
      await this.kv.delete(this.leaseKey(held.target), { previousSeq: held.revision });
    } catch (err) {
      if (!isSequenceConflict(err)) throw err;
    }
  }

  /** Every target with a queue entry or a lease (for the recovery sweep). */
  async targets(): Promise<string[]> {
    const out = new Set<string>();
    for (const { key } of await KeyView.of(this.kv).entries('lane.')) out.add(key.split('.')[1]);
    return [...out];
  }

  /** Calls `onChange` on every later write to the lane; returns a stop function. */
  async watch(target: string, onChange: () => void): Promise<() => void> {
    const iter = await this.kv.watch({ key: `lane.${target}.>`, include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const _ of iter) onChange();
    })().catch(() => undefined);
    return () => iter.stop();
  }
}
