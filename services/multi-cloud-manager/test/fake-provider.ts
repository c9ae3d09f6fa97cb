// An in-memory CloudProvider for domain tests (the adapters have their own tests against the real thing).
import { DependencyUnavailable, NotFound } from '@droplet-mesh/udc-kit';
import {
  instanceId,
  MANAGED_TAG,
  type CloudProvider,
  type CreateInstanceInput,
  type Instance,
  type PowerAction,
  type ProviderAction,
  type ProviderName,
} from '../src/providers/cloud-provider.js';
import type { BeginResult, IdempotencyStore, StoredResponse } from '../src/domain/idempotency-store.js';

export class FakeProvider implements CloudProvider {
  readonly currency: string;
  readonly items = new Map<string, Instance>();
  failWith?: Error;
  delayMs = 0;
  createCalls = 0;
  /** Instances created start `provisioning` and run after this many getAction polls. */
  pollsToRun = 1;
  private polls = new Map<string, number>();
  private seq = 0;

  constructor(
    readonly name: ProviderName,
    currency = 'USD',
  ) {
    this.currency = currency;
  }

  add(partial: Partial<Instance> & { provider_id: string }): Instance {
    const i: Instance = {
      id: instanceId(this.name, partial.provider_id),
      provider: this.name,
      name: `srv-${partial.provider_id}`,
      status: 'running',
      raw_status: 'running',
      ipv4: `10.0.0.${this.items.size + 1}`,
      ipv6: null,
      private_ip: null,
      region: 'r1',
      size: 's1',
      image: 'img',
      tags: [],
      labels: {},
      created_at: null,
      price_monthly: 5,
      managed: false,
      ...partial,
    };
    this.items.set(i.provider_id, i);
    return i;
  }

  private async gate(signal?: AbortSignal) {
    if (this.delayMs)
      await new Promise((r, j) => {
        const t = setTimeout(r, this.delayMs);
        signal?.addEventListener('abort', () => (clearTimeout(t), j(signal.reason)));
      });
    if (this.failWith) throw this.failWith;
  }

  async list(opts: { signal?: AbortSignal } = {}) {
    await this.gate(opts.signal);
    return [...this.items.values()];
  }
  async get(id: string) {
    await this.gate();
    const i = this.items.get(id);
    if (!i) throw new NotFound(`no ${id}`);
    return i;
  }
  async create(input: CreateInstanceInput) {
    await this.gate();
    this.createCalls++;
    const id = `n${++this.seq}`;
    const instance = this.add({
      provider_id: id,
      name: input.name,
      status: 'provisioning',
      tags: [MANAGED_TAG, ...input.tags],
      managed: true,
      ipv4: `192.0.2.${this.seq}`,
    });
    const action: ProviderAction = {
      id: `a-${id}`,
      provider: this.name,
      type: 'create',
      status: 'in_progress',
      raw_status: 'running',
      resource_id: id,
      started_at: null,
      completed_at: null,
    };
    return { instance, action };
  }
  async delete(id: string) {
    await this.get(id);
    this.items.delete(id);
    return null;
  }
  async power(id: string, action: PowerAction): Promise<ProviderAction> {
    const i = await this.get(id);
    this.items.set(id, { ...i, status: action === 'power_off' || action === 'shutdown' ? 'off' : 'running' });
    return {
      id: `p-${id}`,
      provider: this.name,
      type: action,
      status: 'completed',
      raw_status: 'done',
      resource_id: id,
      started_at: null,
      completed_at: null,
    };
  }
  async getAction(a: ProviderAction): Promise<ProviderAction> {
    const n = (this.polls.get(a.id) ?? 0) + 1;
    this.polls.set(a.id, n);
    if (n < this.pollsToRun) return a;
    const i = a.resource_id ? this.items.get(a.resource_id) : undefined;
    if (i) this.items.set(i.provider_id, { ...i, status: 'running' });
    return { ...a, status: 'completed' };
  }
  async sizes() {
    await this.gate();
    return [
      {
        provider: this.name,
        slug: 's1',
        vcpus: 1,
        memory_mb: 512,
        disk_gb: 10,
        price_hourly: 0.01,
        price_monthly: 5,
        currency: this.currency,
        regions: ['r1'],
      },
    ];
  }
  async images() {
    return [];
  }
  async regions() {
    return [];
  }
  async snapshots() {
    await this.gate();
    return [];
  }
  async createSnapshot() {
    return { snapshot: null, action: null };
  }
  async ping() {
    await this.gate();
  }
}

export class MemoryIdempotencyStore implements IdempotencyStore {
  readonly records = new Map<string, { fp: string; response?: StoredResponse }>();
  async begin(key: string, fp: string): Promise<BeginResult> {
    const r = this.records.get(key);
    if (!r) {
      this.records.set(key, { fp });
      return { kind: 'new' };
    }
    if (r.fp !== fp) return { kind: 'mismatch' };
    return r.response ? { kind: 'replay', response: r.response } : { kind: 'in_progress' };
  }
  async complete(key: string, fp: string, response: StoredResponse) {
    this.records.set(key, { fp, response });
  }
  async abandon(key: string) {
    this.records.delete(key);
  }
}

export const unavailable = (p: string) => new DependencyUnavailable(`${p} failed (500)`, { provider: p, provider_status: 500 }, 502);
