import type { KV } from '@nats-io/kv';
import { watchUpdates, type KeyChange, type KeyWatch } from './kv-watch.js';
import { routeBodySchema, routeNameSchema, type RouteRecord } from '../domain/route-spec.js';

export interface StoredRoute {
  record: RouteRecord;
  /** The bucket's revision of this value: the "applied config revision". */
  revision: number;
}

/** Desired routes. The droplet keeps no other copy of record. */
export interface RouteStore {
  get(name: string): Promise<StoredRoute | undefined>;
  list(): Promise<StoredRoute[]>;
  put(record: RouteRecord): Promise<number>;
  delete(name: string): Promise<void>;
  /** Changes written after the watch opened (by any replica); optional for stores that cannot watch. */
  watch?(onChange: (c: KeyChange) => void): Promise<KeyWatch>;
}

/**
 * A stored value is parsed with the same rules as a client's PUT: a value someone wrote
 * into the bucket by hand cannot smuggle anything into a rendered file either.
 */
export function parseStoredRoute(name: string, raw: unknown): RouteRecord | undefined {
  if (!routeNameSchema.safeParse(name).success || typeof raw !== 'object' || raw === null) return undefined;
  const { name: _n, created_at, updated_at, ...spec } = raw as Record<string, unknown>;
  const parsed = routeBodySchema.safeParse(spec);
  if (!parsed.success) return undefined;
  const now = new Date().toISOString();
  return {
    name,
    ...parsed.data,
    created_at: typeof created_at === 'string' ? created_at : now,
    updated_at: typeof updated_at === 'string' ? updated_at : now,
  };
}

export class KvRouteStore implements RouteStore {
  constructor(private kv: KV) {}

  async get(name: string): Promise<StoredRoute | undefined> {
    const e = await this.kv.get(name);
    if (!e || e.operation !== 'PUT' || e.length === 0) return undefined;
    const record = parseStoredRoute(name, e.json());
    return record ? { record, revision: e.revision } : undefined;
  }

  async list(): Promise<StoredRoute[]> {
    const names: string[] = [];
    for await (const k of await this.kv.keys()) names.push(k);
    const out = await Promise.all(names.map((n) => this.get(n).catch(() => undefined)));
    return out.filter((x): x is StoredRoute => !!x).sort((a, b) => a.record.name.localeCompare(b.record.name));
  }

  put(record: RouteRecord): Promise<number> {
    return this.kv.put(record.name, JSON.stringify(record));
  }

  async delete(name: string): Promise<void> {
    await this.kv.delete(name);
  }

  watch(onChange: (c: KeyChange) => void): Promise<KeyWatch> {
    return watchUpdates(this.kv, undefined, onChange);
  }
}
