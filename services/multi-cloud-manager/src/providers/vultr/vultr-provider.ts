import { InvalidRequest } from '@droplet-mesh/udc-kit';
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
import { allCursorPages } from '../http/paging.js';
import type { ProviderHttpClient } from '../http/provider-http-client.js';
import {
  vuImage,
  vuInstance,
  vuRegion,
  vuSize,
  vuSnapshot,
  vultrStatus,
  type VuInstance,
  type VuOs,
  type VuPage,
  type VuPlan,
  type VuRegion,
  type VuSnapshot,
} from './vultr-mapping.js';

const PER_PAGE = 500; // the API's maximum
const POWER_PATH: Record<PowerAction, string> = { power_on: 'start', power_off: 'halt', shutdown: 'halt', reboot: 'reboot' };

/** What an instance looks like once an action on it is done (Vultr has no action resource). */
const DONE_WHEN: Record<string, (v: VuInstance) => boolean> = {
  create: (v) => vultrStatus(v) === 'running' && !!v.main_ip && v.main_ip !== '0.0.0.0',
  power_on: (v) => vultrStatus(v) === 'running',
  reboot: (v) => vultrStatus(v) === 'running',
  power_off: (v) => vultrStatus(v) === 'off',
  shutdown: (v) => vultrStatus(v) === 'off',
};

function safeId(id: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(id))
    throw new InvalidRequest(`vultr ids are UUIDs, got '${id.slice(0, 40)}'`, { fields: [{ path: 'id', message: 'must be a Vultr id' }] });
  return id;
}

/**
 * Vultr API v2 (https://api.vultr.com/v2). Its actions are synthetic: `<instance>:<type>`,
 * polled by reading the instance, since Vultr only answers 204 to power calls.
 */
export class VultrProvider implements CloudProvider {
  readonly name = 'vultr' as const;
  readonly currency = 'USD';
  readonly pricesFromCatalog = true;
  constructor(private readonly http: ProviderHttpClient) {}

  private listAll<T>(path: string, key: string, opts: CallOptions): Promise<T[]> {
    return allCursorPages<VuPage & Record<string, unknown>, T>(this.http.listing(path), {
      fetchPage: (cursor) => this.http.get(path, { query: { per_page: PER_PAGE, cursor }, signal: opts.signal }),
      items: (p) => (p[key] as T[] | undefined) ?? [],
      next: (p) => p.meta?.links?.next || undefined,
      perPage: PER_PAGE,
      total: (p) => (typeof p.meta?.total === 'number' ? p.meta.total : undefined),
      idOf: (i) => (i as { id: string | number }).id,
    });
  }

  async list(opts: CallOptions = {}): Promise<Instance[]> {
    return (await this.listAll<VuInstance>('/instances', 'instances', opts)).map((v) => vuInstance(v));
  }

  private async raw(id: string, opts: CallOptions): Promise<VuInstance> {
    return (await this.http.get<{ instance: VuInstance }>(`/instances/${safeId(id)}`, { signal: opts.signal })).instance;
  }

  async get(id: string, opts: CallOptions = {}): Promise<Instance> {
    return vuInstance(await this.raw(id, opts));
  }

  private action(id: string, type: string, status: ProviderAction['status'] = 'in_progress'): ProviderAction {
    return {
      id: `${id}:${type}`,
      provider: this.name,
      type,
      status,
      raw_status: status === 'completed' ? 'done' : 'polling',
      resource_id: id,
      started_at: new Date().toISOString(),
      completed_at: null,
    };
  }

  async create(input: CreateInstanceInput, opts: CallOptions = {}): Promise<CreateResult> {
    const image = /^\d+$/.test(input.image) ? { os_id: Number(input.image) } : { image_id: input.image };
    const body = {
      region: input.region,
      plan: input.size,
      ...image,
      label: input.name,
      hostname: input.name,
      tags: joinTags([MANAGED_TAG, ...input.tags], input.labels),
      ...(input.user_data ? { user_data: Buffer.from(input.user_data).toString('base64') } : {}),
      ...(input.ssh_keys?.length ? { sshkey_id: input.ssh_keys } : {}),
    };
    // The answer carries default_password: dropped here, never logged or returned.
    const r = await this.http.call<{ instance: VuInstance }>('POST', '/instances', { body, signal: opts.signal });
    const instance = vuInstance(r.body.instance);
    return { instance, action: this.action(instance.provider_id, 'create') };
  }

  async delete(id: string, opts: CallOptions = {}): Promise<ProviderAction | null> {
    await this.http.call('DELETE', `/instances/${safeId(id)}`, { signal: opts.signal });
    return null;
  }

  async power(id: string, action: PowerAction, opts: CallOptions = {}): Promise<ProviderAction> {
    await this.http.call('POST', `/instances/${safeId(id)}/${POWER_PATH[action]}`, { signal: opts.signal });
    return this.action(id, action);
  }

  async getAction(action: ProviderAction, opts: CallOptions = {}): Promise<ProviderAction> {
    if (action.type === 'snapshot') {
      const s = (await this.http.get<{ snapshot: VuSnapshot }>(`/snapshots/${safeId(action.resource_id ?? '')}`, { signal: opts.signal }))
        .snapshot;
      const done = s.status === 'complete';
      return {
        ...action,
        status: done ? 'completed' : 'in_progress',
        raw_status: s.status ?? 'unknown',
        completed_at: done ? new Date().toISOString() : null,
      };
    }
    const instanceId = action.id.slice(0, action.id.lastIndexOf(':'));
    const v = await this.raw(instanceId, opts);
    const done = DONE_WHEN[action.type]?.(v) ?? true;
    return {
      ...action,
      status: done ? 'completed' : 'in_progress',
      raw_status: `${v.status}/${v.power_status}`,
      completed_at: done ? new Date().toISOString() : null,
    };
  }

  async sizes(opts: CallOptions = {}) {
    return (await this.listAll<VuPlan>('/plans', 'plans', opts)).map(vuSize);
  }

  async images(opts: CallOptions = {}) {
    return (await this.listAll<VuOs>('/os', 'os', opts)).map(vuImage);
  }

  async regions(opts: CallOptions = {}) {
    return (await this.listAll<VuRegion>('/regions', 'regions', opts)).map(vuRegion);
  }

  async snapshots(opts: CallOptions = {}) {
    return (await this.listAll<VuSnapshot>('/snapshots', 'snapshots', opts)).map(vuSnapshot);
  }

  async createSnapshot(id: string, name: string, opts: CallOptions = {}) {
    const r = await this.http.call<{ snapshot: VuSnapshot }>('POST', '/snapshots', {
      body: { instance_id: safeId(id), description: name },
      signal: opts.signal,
    });
    const snapshot = { ...vuSnapshot(r.body.snapshot), resource_id: id };
    const action: ProviderAction = { ...this.action(id, 'snapshot'), id: `${snapshot.id}:snapshot`, resource_id: snapshot.id };
    return { snapshot, action };
  }

  async ping(opts: CallOptions = {}): Promise<void> {
    await this.http.get('/account', { signal: opts.signal });
  }

  close() {
    return this.http.close();
  }
}
