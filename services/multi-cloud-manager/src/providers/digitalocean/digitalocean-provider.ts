import {
  joinTags,
  MANAGED_TAG,
  type CallOptions,
  type CloudProvider,
  type CreateInstanceInput,
  type CreateResult,
  type Instance,
  type PowerAction,
  type ProviderAction,
} from '../cloud-provider.js';
import { allNumberedPages } from '../http/paging.js';
import type { ProviderHttpClient } from '../http/provider-http-client.js';
import { numericId } from '../numeric-id.js';
import {
  doAction,
  doImage,
  doInstance,
  doRegion,
  doSize,
  doSnapshot,
  type DoAction,
  type DoDroplet,
  type DoImage,
  type DoPage,
  type DoRegion,
  type DoSize,
  type DoSnapshot,
} from './digitalocean-mapping.js';

const PER_PAGE = 200; // the API's maximum

/** The page number a `links.pages` URL names (undefined when there is no such link). */
function pageOf(link: string | undefined): number | undefined {
  if (!link) return undefined;
  try {
    const n = Number(new URL(link).searchParams.get('page'));
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** DigitalOcean API v2 (https://api.digitalocean.com, paths under /v2). */
export class DigitalOceanProvider implements CloudProvider {
  readonly name = 'digitalocean' as const;
  readonly currency = 'USD';
  constructor(private readonly http: ProviderHttpClient) {}

  private listAll<T>(path: string, key: string, opts: CallOptions, query: Record<string, string> = {}): Promise<T[]> {
    return allNumberedPages<DoPage & Record<string, unknown>, T>(this.http.listing(path), {
      fetchPage: (page) => this.http.get(path, { query: { ...query, page, per_page: PER_PAGE }, signal: opts.signal }),
      items: (p) => (p[key] as T[] | undefined) ?? [],
      perPage: PER_PAGE,
      total: (p) => (typeof p.meta?.total === 'number' ? p.meta.total : undefined),
      nextPage: (p) => pageOf(p.links?.pages?.next),
      idOf: (i) => (i as { id?: number; slug?: string }).id ?? (i as { slug: string }).slug,
    });
  }

  async list(opts: CallOptions = {}): Promise<Instance[]> {
    return (await this.listAll<DoDroplet>('/v2/droplets', 'droplets', opts)).map(doInstance);
  }

  async get(id: string, opts: CallOptions = {}): Promise<Instance> {
    const r = await this.http.get<{ droplet: DoDroplet }>(`/v2/droplets/${numericId(this.name, id)}`, { signal: opts.signal });
    return doInstance(r.droplet);
  }

  async create(input: CreateInstanceInput, opts: CallOptions = {}): Promise<CreateResult> {
    const body = {
      name: input.name,
      region: input.region,
      size: input.size,
      image: /^\d+$/.test(input.image) ? Number(input.image) : input.image,
      tags: joinTags([MANAGED_TAG, ...input.tags], input.labels),
      ...(input.user_data ? { user_data: input.user_data } : {}),
      ...(input.ssh_keys?.length ? { ssh_keys: input.ssh_keys } : {}),
    };
    const r = await this.http.call<{ droplet: DoDroplet; links?: { actions?: Array<{ id: number }> } }>('POST', '/v2/droplets', {
      body,
      signal: opts.signal,
    });
    const instance = doInstance(r.body.droplet);
    const actionId = r.body.links?.actions?.[0]?.id;
    const action: ProviderAction | null = actionId
      ? {
          id: String(actionId),
          provider: this.name,
          type: 'create',
          status: 'in_progress',
          raw_status: 'in-progress',
          resource_id: instance.provider_id,
          started_at: null,
          completed_at: null,
        }
      : null;
    return { instance, action };
  }

  async delete(id: string, opts: CallOptions = {}): Promise<ProviderAction | null> {
    await this.http.call('DELETE', `/v2/droplets/${numericId(this.name, id)}`, { signal: opts.signal });
    return null;
  }

  async power(id: string, action: PowerAction, opts: CallOptions = {}): Promise<ProviderAction> {
    const r = await this.http.call<{ action: DoAction }>('POST', `/v2/droplets/${numericId(this.name, id)}/actions`, {
      body: { type: action },
      signal: opts.signal,
    });
    return doAction(r.body.action);
  }

  async getAction(action: ProviderAction, opts: CallOptions = {}): Promise<ProviderAction> {
    const r = await this.http.get<{ action: DoAction }>(`/v2/actions/${numericId(this.name, action.id)}`, { signal: opts.signal });
    return { ...doAction(r.action), type: action.type === 'create' ? 'create' : r.action.type };
  }

  async sizes(opts: CallOptions = {}) {
    return (await this.listAll<DoSize>('/v2/sizes', 'sizes', opts)).map(doSize);
  }

  async images(opts: CallOptions = {}) {
    return (await this.listAll<DoImage>('/v2/images', 'images', opts, { type: 'distribution' })).map(doImage);
  }

  async regions(opts: CallOptions = {}) {
    return (await this.listAll<DoRegion>('/v2/regions', 'regions', opts)).map(doRegion);
  }

  async snapshots(opts: CallOptions = {}) {
    return (await this.listAll<DoSnapshot>('/v2/snapshots', 'snapshots', opts, { resource_type: 'droplet' })).map(doSnapshot);
  }

  async createSnapshot(id: string, name: string, opts: CallOptions = {}) {
    const r = await this.http.call<{ action: DoAction }>('POST', `/v2/droplets/${numericId(this.name, id)}/actions`, {
      body: { type: 'snapshot', name },
      signal: opts.signal,
    });
    return { snapshot: null, action: doAction(r.body.action) };
  }

  async ping(opts: CallOptions = {}): Promise<void> {
    await this.http.get('/v2/account', { signal: opts.signal });
  }

  close() {
    return this.http.close();
  }
}
