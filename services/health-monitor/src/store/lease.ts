import type { KV } from '@nats-io/kv';
import { isWrongLastSequence } from './incident-store.js';
import { keyPart } from './keys.js';

interface LeaseValue {
  holder: string;
  expires_at: number;
  acquired_at: number;
}

/**
 * A lease in JetStream KV: create-if-absent, or take over an expired one with a
 * revision check, so two monitors can never both believe they hold it. The holder
 * renews it (again a revision check) while working; a holder that dies simply stops
 * renewing and the lease is free after `ttlMs`.
 */
export class KvLease {
  private held = new Map<string, number>();

  constructor(
    private kv: KV,
    private holder: string,
    private ttlMs: number,
    private now: () => number = Date.now,
  ) {}

  holds(name: string): boolean {
    return this.held.has(name);
  }

  /** Current holder (unexpired), if any. */
  async holderOf(name: string): Promise<string | undefined> {
    const e = await this.kv.get(keyPart(name));
    if (!e || e.operation !== 'PUT') return undefined;
    const v = e.json<LeaseValue>();
    return v.expires_at > this.now() ? v.holder : undefined;
  }

  async acquire(name: string): Promise<boolean> {
    if (this.held.has(name)) return this.renew(name);
    const key = keyPart(name);
    const value = (): string =>
      JSON.stringify({ holder: this.holder, expires_at: this.now() + this.ttlMs, acquired_at: this.now() } satisfies LeaseValue);
    try {
      const e = await this.kv.get(key);
      let revision: number;
      if (!e || e.operation !== 'PUT') {
        revision = await this.kv.create(key, value());
      } else {
        const cur = e.json<LeaseValue>();
        if (cur.holder !== this.holder && cur.expires_at > this.now()) return false;
        revision = await this.kv.update(key, value(), e.revision);
      }
      this.held.set(name, revision);
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }

  /** Extend a held lease; false (and no longer held) when someone else took it. */
  async renew(name: string): Promise<boolean> {
    const revision = this.held.get(name);
    if (revision === undefined) return false;
    try {
      const next = await this.kv.update(
        keyPart(name),
        JSON.stringify({ holder: this.holder, expires_at: this.now() + this.ttlMs, acquired_at: this.now() } satisfies LeaseValue),
        revision,
      );
      this.held.set(name, next);
      return true;
    } catch (err) {
      this.held.delete(name);
      if (isWrongLastSequence(err)) return false;
      throw err;
    }
  }

  async release(name: string): Promise<void> {
    const revision = this.held.get(name);
    this.held.delete(name);
    if (revision === undefined) return;
    await this.kv.delete(keyPart(name), { previousSeq: revision }).catch(() => undefined);
  }

  /** Forget held leases without touching KV (they expire on their own). */
  forgetAll(): void {
    this.held.clear();
  }
}
