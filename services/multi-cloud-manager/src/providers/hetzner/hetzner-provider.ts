import type {
  CallOptions,
  CloudProvider,
  CreateInstanceInput,
  CreateResult,
  Instance,
  PowerAction,
  ProviderAction,
} from '../cloud-provider.js';
import { allNumberedPages } from '../http/paging.js';
import type { ProviderHttpClient } from '../http/provider-http-client.js';
import { numericId } from '../numeric-id.js';
import {
  hzAction,
  hzImage,
  hzInstance,
  hzLabels,
  hzRegion,
  hzSize,
  hzSnapshot,
  type HzAction,
  type HzImage,
  type HzLocation,
  type HzPage,
  type HzServer,
  type HzServerType,
} from './hetzner-mapping.js';

const PER_PAGE = 50; // the API's maximum
const POWER_PATH: Record<PowerAction, string> = { power_on: 'poweron', power_off: 'poweroff', shutdown: 'shutdown', reboot: 'reboot' };

/** Hetzner Cloud API v1 (https://api.hetzner.cloud/v1). */
export class HetznerProvider implements CloudProvider {
  readonly name = 'hetzner' as const;
  readonly currency = 'EUR';
  constructor(private readonly http: ProviderHttpClient) {}

  private listAll<T>(path: string, key: string, opts: CallOptions, query: Record<string, string> = {}): Promise<T[]> {
    return allNumberedPages<HzPage & Record<string, unknown>, T>(this.http.listing(path), {
      fetchPage: (page) => this.http.get(path, { query: { ...query, page, per_page: PER_PAGE }, signal: opts.signal }),
      items: (p) => (p[key] as T[] | undefined) ?? [],
      perPage: PER_PAGE,
      total: (p) => p.meta?.pagination?.total_entries ?? undefined,
      lastPage: (p) => p.meta?.pagination?.last_page ?? undefined,
      nextPage: (p) => p.meta?.pagination?.next_page ?? undefined,
      idOf: (i) => (i as { id: number }).id,
    });
  }

  async list(opts: CallOptions = {}): Promise<Instance[]> {
    return (await this.listAll<HzServer>('/servers', 'servers', opts)).map(hzInstance);
  }

  async get(id: string, opts: CallOptions = {}): Promise<Instance> {
    const r = await this.http.get<{ server: HzServer }>(`/servers/${numericId(this.name, id)}`, { signal: opts.signal });
    return hzInstance(r.server);
  }

  async create(input: CreateInstanceInput, opts: CallOptions = {}): Promise<CreateResult> {
    const body = {
      name: input.name,
      server_type: input.size,
      image: input.image,
      location: input.region,
      labels: hzLabels(input.tags, input.labels),
      ...(input.user_data ? { user_data: input.user_data } : {}),
      ...(input.ssh_keys?.length ? { ssh_keys: input.ssh_keys } : {}),
    };
    // The answer carries root_password: it is dropped here and never logged or returned.
    const r = await this.http.call<{ server: HzServer; action: HzAction }>('POST', '/servers', { body, signal: opts.signal });
    return { instance: hzInstance(r.body.server), action: hzAction(r.body.action, 'create') };
  }

  async delete(id: string, opts: CallOptions = {}): Promise<ProviderAction | null> {
    const r = await this.http.call<{ action?: HzAction } | undefined>('DELETE', `/servers/${numericId(this.name, id)}`, {
      signal: opts.signal,
    });
    return r.body?.action ? hzAction(r.body.action, 'delete') : null;
  }

  async power(id: string, action: PowerAction, opts: CallOptions = {}): Promise<ProviderAction> {
    const r = await this.http.call<{ action: HzAction }>('POST', `/servers/${numericId(this.name, id)}/actions/${POWER_PATH[action]}`, {
      signal: opts.signal,
    });
    return hzAction(r.body.action, action);
  }

  async getAction(action: ProviderAction, opts: CallOptions = {}): Promise<ProviderAction> {
    const r = await this.http.get<{ action: HzAction }>(`/actions/${numericId(this.name, action.id)}`, { signal: opts.signal });
    return hzAction(r.action, action.type);
  }

  async sizes(opts: CallOptions = {}) {
    return (await this.listAll<HzServerType>('/server_types', 'server_types', opts)).filter((t) => !t.deprecated).map(hzSize);
  }

  async images(opts: CallOptions = {}) {
    return (await this.listAll<HzImage>('/images', 'images', opts, { type: 'system' })).map(hzImage);
  }

  async regions(opts: CallOptions = {}) {
    return (await this.listAll<HzLocation>('/locations', 'locations', opts)).map(hzRegion);
  }

  async snapshots(opts: CallOptions = {}) {
    return (await this.listAll<HzImage>('/images', 'images', opts, { type: 'snapshot' })).map(hzSnapshot);
  }

  async createSnapshot(id: string, name: string, opts: CallOptions = {}) {
    const r = await this.http.call<{ image: HzImage; action: HzAction }>(
      'POST',
      `/servers/${numericId(this.name, id)}/actions/create_image`,
      {
        body: { type: 'snapshot', description: name, labels: { 'droplet-mesh': 'true' } },
        signal: opts.signal,
      },
    );
    return { snapshot: hzSnapshot(r.body.image), action: hzAction(r.body.action, 'snapshot') };
  }

  async ping(opts: CallOptions = {}): Promise<void> {
    // Hetzner has no account endpoint; listing one server proves the token.
    await this.http.get('/servers', { query: { per_page: 1 }, signal: opts.signal });
  }

  close() {
    return this.http.close();
  }
}
