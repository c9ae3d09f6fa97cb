import type { KV } from '@nats-io/kv';
import { KeyView } from './key-view.js';

/** Typed records under one key prefix of a JetStream KV bucket (`<prefix>.<k1>.<k2>`). */
export class KvCollection<T> {
  constructor(
    private kv: KV,
    private prefix: string,
  ) {}

  private key(parts: string[]): string {
    return [this.prefix, ...parts].join('.');
  }

  async get(...parts: string[]): Promise<T | undefined> {
    const e = await this.kv.get(this.key(parts));
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    return e.json<T>();
  }

  async getWithRevision(...parts: string[]): Promise<{ value: T; revision: number } | undefined> {
    const e = await this.kv.get(this.key(parts));
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    return { value: e.json<T>(), revision: e.revision };
  }

  async put(parts: string[], value: T): Promise<void> {
    await this.kv.put(this.key(parts), JSON.stringify(value));
  }

  /** Create only when absent; false when it exists. */
  async create(parts: string[], value: T): Promise<boolean> {
    try {
      await this.kv.create(this.key(parts), JSON.stringify(value));
      return true;
    } catch (err) {
      if (/wrong last sequence|exists/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** Compare-and-set; false when someone else wrote first. */
  async update(parts: string[], value: T, revision: number): Promise<boolean> {
    try {
      await this.kv.update(this.key(parts), JSON.stringify(value), revision);
      return true;
    } catch (err) {
      if (/wrong last sequence/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  async delete(...parts: string[]): Promise<void> {
    await this.kv.delete(this.key(parts));
  }

  /** Delete with the key's history (what a short-lived index entry needs). */
  async purge(...parts: string[]): Promise<void> {
    await this.kv.purge(this.key(parts));
  }

  /**
   * Every record whose key starts with the given parts, oldest write first. The keys come
   * from the bucket's watched key view, never from `kv.keys()` (which can stall: KeyView).
   */
  async list(...parts: string[]): Promise<T[]> {
    return (await KeyView.of(this.kv).entries(`${this.key(parts)}.`)).map((e) => e.json<T>());
  }
}
