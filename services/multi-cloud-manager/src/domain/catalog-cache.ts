import { LRUCache } from 'lru-cache';
import type { CloudProvider, Image, Region, Size } from '../providers/cloud-provider.js';

export const CATALOG_KINDS = ['sizes', 'images', 'regions'] as const;
export type CatalogKind = (typeof CATALOG_KINDS)[number];
type Entry = Size[] | Image[] | Region[];

/**
 * Provider catalogs change rarely and cost several requests each: cache them for a TTL.
 * Concurrent misses for one key share a single fetch (lru-cache's fetchMethod).
 * A cache, not state of record, so each replica keeps its own.
 */
export class CatalogCache {
  private readonly cache?: LRUCache<string, Entry, { provider: CloudProvider; kind: CatalogKind }>;

  constructor(ttlSeconds: number) {
    if (ttlSeconds > 0) {
      this.cache = new LRUCache({
        max: 64,
        ttl: ttlSeconds * 1000,
        fetchMethod: (_key, _stale, { context }) => context.provider[context.kind](),
      });
    }
  }

  async get(provider: CloudProvider, kind: 'sizes'): Promise<Size[]>;
  async get(provider: CloudProvider, kind: 'images'): Promise<Image[]>;
  async get(provider: CloudProvider, kind: 'regions'): Promise<Region[]>;
  async get(provider: CloudProvider, kind: CatalogKind): Promise<Entry>;
  async get(provider: CloudProvider, kind: CatalogKind): Promise<Entry> {
    if (!this.cache) return provider[kind]();
    const v = await this.cache.fetch(`${provider.name}:${kind}`, { context: { provider, kind } });
    return v ?? [];
  }

  clear(): void {
    this.cache?.clear();
  }
}
