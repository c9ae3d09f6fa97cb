import { Conflict, Unprocessable, UdcError, type Logger, type Principal } from '@droplet-mesh/udc-kit';
import { assertNotServing, type AskUsage } from './server-usage-guard.js';
import type {
  CloudProvider,
  CreateInstanceInput,
  Instance,
  PowerAction,
  ProviderAction,
  ProviderName,
} from '../providers/cloud-provider.js';
import { noSuchContainer } from '../providers/local/docker-errors.js';
import type { ProviderSet } from '../providers/provider-set.js';
import { waitForAction } from './action-waiter.js';
import type { CatalogCache, CatalogKind } from './catalog-cache.js';
import { fanOut, type ProviderOutcome } from './fan-out.js';
import type { HostRegistry } from './host-registry.js';
import { fingerprint, idempotencyKvKey, type IdempotencyStore, type StoredResponse } from './idempotency-store.js';
import { filterInstances, searchInstances, sortInstances, summarise, type InstanceFilter } from './instance-query.js';
import type { LifecycleWatcher } from './lifecycle-watcher.js';

export interface ProviderReport {
  provider: ProviderName;
  status: 'ok' | 'error' | 'not_configured';
  count?: number;
  duration_ms?: number;
  error?: { code: string; message: string; details?: unknown };
  hint?: string;
}

export interface FleetSettings {
  listTimeoutMs: number;
  pollIntervalMs: number;
  waitTimeoutMs: number;
}

export interface FleetDeps {
  providers: ProviderSet;
  catalog: CatalogCache;
  idempotency: IdempotencyStore;
  hosts: HostRegistry;
  watcher: LifecycleWatcher;
  emit: (type: string, data: unknown) => void;
  logger: Logger;
  settings: FleetSettings;
  /** Whether the deployer still runs services on an instance (asked before a delete without force). */
  serverUsage?: AskUsage;
}

export interface CreateRequest extends CreateInstanceInput {
  provider: ProviderName;
  wait: boolean;
}

export interface CreateResponse extends StoredResponse {
  replayed: boolean;
}

/** What an event or a log line says about an instance: no secrets, no raw provider payload. */
export function brief(i: Instance) {
  return {
    id: i.id,
    provider: i.provider,
    provider_id: i.provider_id,
    name: i.name,
    status: i.status,
    ipv4: i.ipv4,
    region: i.region,
    managed: i.managed,
  };
}

const POWER_OFF: PowerAction[] = ['power_off', 'shutdown'];

/** Who asks: on a provider that guards unmanaged instances, only `admin` sees and (with force) touches them. */
export interface Caller {
  admin: boolean;
}
/** The default everywhere: a caller without `admin` (every droplet's token, any NATS message). */
export const NON_ADMIN: Caller = Object.freeze({ admin: false });
export const callerOf = (p: Principal | undefined): Caller => ({ admin: !!p?.scopes.includes('admin') });

/** The unified fleet: every provider behind one set of operations. Knows nothing of HTTP. */
export class Fleet {
  constructor(private readonly d: FleetDeps) {}

  private get waitOpts() {
    return { intervalMs: this.d.settings.pollIntervalMs, timeoutMs: this.d.settings.waitTimeoutMs };
  }

  /** An instance this caller may know of: on a guarding provider, another's container exists only for `admin`. */
  private visible(p: CloudProvider, i: Instance, caller: Caller): boolean {
    return !p.guardsUnmanaged || i.managed || caller.admin;
  }

  /** The instance, or the provider's own "no such instance" when the caller may not know of it. */
  private async getVisible(p: CloudProvider, id: string, caller: Caller, operation: string): Promise<Instance> {
    const i = await p.get(id);
    if (!this.visible(p, i, caller)) throw noSuchContainer(id, operation);
    return i;
  }

  /** Reports for the requested providers, with `not_configured` ones listed and never called. */
  private async across<T>(
    only: ProviderName | undefined,
    call: (p: CloudProvider, signal: AbortSignal) => Promise<T>,
  ): Promise<{ outcomes: ProviderOutcome<T>[]; reports: ProviderReport[] }> {
    const states = this.d.providers.states().filter((s) => !only || s.provider === only);
    const targets = states.filter((s) => s.status === 'configured').map((s) => this.d.providers.get(s.provider));
    const outcomes = await fanOut(targets, this.d.settings.listTimeoutMs, call);
    const reports: ProviderReport[] = states.map((s) => {
      if (s.status === 'not_configured') return { provider: s.provider, status: 'not_configured', hint: s.hint };
      const o = outcomes.find((x) => x.provider === s.provider)!;
      if (o.status === 'error') return { provider: s.provider, status: 'error', duration_ms: o.duration_ms, error: o.error };
      return { provider: s.provider, status: 'ok', duration_ms: o.duration_ms, count: Array.isArray(o.value) ? o.value.length : undefined };
    });
    return { outcomes, reports };
  }

  private async listOne(p: CloudProvider, signal: AbortSignal, caller: Caller): Promise<Instance[]> {
    if (p.guardsUnmanaged) return (await p.list({ signal })).filter((i) => this.visible(p, i, caller));
    if (!p.pricesFromCatalog) return p.list({ signal });
    const [items, sizes] = await Promise.all([p.list({ signal }), this.d.catalog.get(p, 'sizes').catch(() => [])]);
    const price = new Map(sizes.map((s) => [s.slug, s.price_monthly]));
    return items.map((i) =>
      i.price_monthly === null && i.size && price.has(i.size) ? { ...i, price_monthly: price.get(i.size) ?? null } : i,
    );
  }

  /** Every instance on every configured provider, in parallel; a failing provider gives an error entry. */
  async listAll(only?: ProviderName, caller: Caller = NON_ADMIN): Promise<{ instances: Instance[]; providers: ProviderReport[] }> {
    const { outcomes, reports } = await this.across(only, (p, signal) => this.listOne(p, signal, caller));
    const instances = sortInstances(outcomes.flatMap((o) => (o.status === 'ok' ? o.value : [])));
    return { instances, providers: reports };
  }

  async list(filter: InstanceFilter, caller: Caller = NON_ADMIN) {
    const all = await this.listAll(filter.provider, caller);
    return { instances: filterInstances(all.instances, filter), providers: all.providers };
  }

  async search(q: string, filter: InstanceFilter, caller: Caller = NON_ADMIN) {
    const all = await this.listAll(filter.provider, caller);
    return { instances: searchInstances(filterInstances(all.instances, filter), q), providers: all.providers };
  }

  async summary(caller: Caller = NON_ADMIN) {
    const all = await this.listAll(undefined, caller);
    const currency = (p: ProviderName) => (this.d.providers.has(p) ? this.d.providers.get(p).currency : 'USD');
    return { ...summarise(all.instances, currency), providers: all.providers };
  }

  async get(provider: ProviderName, id: string, caller: Caller = NON_ADMIN): Promise<Instance> {
    return this.getVisible(this.d.providers.get(provider), id, caller, 'get');
  }

  /** Create, honouring an Idempotency-Key: the same key and request replay the first answer. */
  async create(req: CreateRequest, idem?: { key: string; scope: string }, caller: Caller = NON_ADMIN): Promise<CreateResponse> {
    if (!idem) return { ...(await this.createNow(req, caller)), replayed: false };
    const key = idempotencyKvKey(idem.scope, idem.key);
    const fp = fingerprint(req);
    const begun = await this.d.idempotency.begin(key, fp);
    if (begun.kind === 'replay') return { ...begun.response, replayed: true };
    if (begun.kind === 'in_progress')
      throw new Conflict('a create with this Idempotency-Key is still in progress; retry shortly', { idempotency_key: idem.key });
    if (begun.kind === 'mismatch')
      throw new Unprocessable('this Idempotency-Key was already used with a different request', { idempotency_key: idem.key });
    let res: StoredResponse;
    try {
      res = await this.createNow(req, caller);
    } catch (err) {
      // Only the provider's create can fail here (waiting never throws), so nothing was created.
      await this.d.idempotency.abandon(key).catch((e) => this.d.logger.warn({ err: e }, 'could not release idempotency key'));
      throw err;
    }
    // The server exists now: failing to record that must not turn into an error a client retries.
    await this.d.idempotency
      .complete(key, fp, res)
      .catch((e) => this.d.logger.warn({ err: e }, 'could not record idempotent response; the key stays claimed until it expires'));
    return { ...res, replayed: false };
  }

  private async createNow(req: CreateRequest, caller: Caller): Promise<StoredResponse> {
    const provider = this.d.providers.get(req.provider);
    const { provider: _p, wait, ...input } = req;
    const { instance, action } = await provider.create(input, { anyImage: caller.admin });
    this.d.logger.info({ instance: brief(instance) }, 'instance created');
    this.d.emit('instance.created', { instance: brief(instance), action });
    if (instance.status === 'running' && (!action || action.status === 'completed')) {
      const registered = await this.d.hosts.register(instance);
      return { status: 201, body: { instance, action, registered } };
    }
    if (!wait) {
      this.d.watcher.follow(provider, instance, action, (after) => this.settled(instance, after, true), true);
      return { status: 202, body: { instance, action, registered: false } };
    }
    try {
      const done = action ? await waitForAction(provider, action, this.waitOpts) : null;
      if (done?.status === 'errored')
        return {
          status: 202,
          body: {
            instance,
            action: done,
            registered: false,
            wait_error: { code: 'DEPENDENCY_UNAVAILABLE', message: `${provider.name} reported the create as failed` },
          },
        };
      const after = await this.untilRunning(provider, instance);
      const registered = after.status === 'running' ? await this.d.hosts.register(after) : false;
      if (after.status !== instance.status)
        this.d.emit('instance.state_changed', { instance: brief(after), from: instance.status, to: after.status, action: 'create' });
      return { status: after.status === 'running' ? 201 : 202, body: { instance: after, action: done, registered } };
    } catch (err) {
      // The server exists: answer 202 with what we know rather than an error a client would retry.
      const e = err instanceof UdcError ? { code: err.code, message: err.message } : { code: 'INTERNAL_ERROR', message: 'waiting failed' };
      return { status: 202, body: { instance, action, registered: false, wait_error: e } };
    }
  }

  private async untilRunning(provider: CloudProvider, instance: Instance): Promise<Instance> {
    const deadline = Date.now() + this.d.settings.waitTimeoutMs;
    let after = await provider.get(instance.provider_id);
    while (after.status === 'provisioning' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, this.d.settings.pollIntervalMs));
      after = await provider.get(instance.provider_id);
    }
    return after;
  }

  private async settled(before: Instance, after: Instance, register: boolean): Promise<void> {
    if (register && after.status === 'running') await this.d.hosts.register(after);
    if (after.status !== before.status)
      this.d.emit('instance.state_changed', { instance: brief(after), from: before.status, to: after.status });
  }

  private refuseUnmanaged(i: Instance, what: string, force: boolean): void {
    if (!i.managed && !force) {
      throw new Conflict(`${i.id} was not created by droplet-mesh (no 'droplet-mesh' tag); pass force=true to ${what} it anyway`, {
        instance_id: i.id,
        managed: false,
        hint: 'force=true',
      });
    }
  }

  async delete(providerName: ProviderName, id: string, force: boolean, caller: Caller = NON_ADMIN) {
    const provider = this.d.providers.get(providerName);
    const instance = await this.getVisible(provider, id, caller, 'delete');
    this.refuseUnmanaged(instance, 'delete', force);
    if (this.d.serverUsage) await assertNotServing(instance, force, this.d.serverUsage);
    const action = await provider.delete(id);
    this.d.logger.info({ instance: brief(instance), forced: !instance.managed }, 'instance deleted');
    this.d.emit('instance.deleted', { instance: brief(instance), forced: !instance.managed });
    await this.d.hosts.remove(instance);
    return { deleted: true, instance: brief(instance), action };
  }

  async act(
    providerName: ProviderName,
    id: string,
    opts: { type: PowerAction; wait: boolean; force: boolean },
    caller: Caller = NON_ADMIN,
  ) {
    const provider = this.d.providers.get(providerName);
    const before = await this.getVisible(provider, id, caller, opts.type);
    if (POWER_OFF.includes(opts.type) || provider.guardsUnmanaged) this.refuseUnmanaged(before, opts.type.replace('_', ' '), opts.force);
    let action = await provider.power(id, opts.type);
    if (opts.wait) action = await waitForAction(provider, action, this.waitOpts);
    if (action.status !== 'in_progress') {
      const after = await provider.get(id);
      if (after.status !== before.status)
        this.d.emit('instance.state_changed', { instance: brief(after), from: before.status, to: after.status, action: opts.type });
      return { action, instance: after };
    }
    this.d.watcher.follow(provider, before, action, (after) => this.settled(before, after, false));
    return { action, instance: before };
  }

  async snapshots(only?: ProviderName) {
    const { outcomes, reports } = await this.across(only, (p, signal) => p.snapshots({ signal }));
    return { snapshots: outcomes.flatMap((o) => (o.status === 'ok' ? o.value : [])), providers: reports };
  }

  async createSnapshot(
    providerName: ProviderName,
    id: string,
    opts: { name: string; wait: boolean; force?: boolean },
    caller: Caller = NON_ADMIN,
  ) {
    const provider = this.d.providers.get(providerName);
    const instance = await this.getVisible(provider, id, caller, 'snapshot');
    if (provider.guardsUnmanaged) this.refuseUnmanaged(instance, 'snapshot', !!opts.force);
    const r = await provider.createSnapshot(id, opts.name);
    const action: ProviderAction | null = r.action && opts.wait ? await waitForAction(provider, r.action, this.waitOpts) : r.action;
    this.d.emit('snapshot.created', { provider: providerName, instance_id: id, snapshot: r.snapshot, action });
    return { snapshot: r.snapshot, action };
  }

  async catalog(kind: CatalogKind, only?: ProviderName) {
    if (only) {
      const items = await this.d.catalog.get(this.d.providers.get(only), kind);
      return { items, providers: [{ provider: only, status: 'ok' as const, count: items.length }] };
    }
    const { outcomes, reports } = await this.across(undefined, (p) => this.d.catalog.get(p, kind));
    return { items: outcomes.flatMap((o) => (o.status === 'ok' ? (o.value as unknown[]) : [])), providers: reports };
  }

  /** Each provider's API reachable and token valid, with latency. */
  async healthCheck() {
    const { reports } = await this.across(undefined, (p, signal) => p.ping({ signal }));
    return {
      providers: reports.map((r) => ({
        provider: r.provider,
        status: r.status,
        reachable: r.status === 'ok' ? true : r.status === 'error' ? reachable(r.error) : null,
        token_valid: r.status === 'ok' ? true : r.status === 'error' ? tokenValid(r.error) : null,
        latency_ms: r.duration_ms ?? null,
        ...(r.error ? { error: r.error } : {}),
        ...(r.hint ? { hint: r.hint } : {}),
      })),
    };
  }

  stop(): void {
    this.d.watcher.stop();
  }
}

function providerStatus(e: ProviderReport['error']): number | undefined {
  return (e?.details as { provider_status?: number } | undefined)?.provider_status;
}
/** The API answered (any HTTP status) unless the call never got a response. */
function reachable(e: ProviderReport['error']): boolean {
  return providerStatus(e) !== undefined;
}
function tokenValid(e: ProviderReport['error']): boolean | null {
  const s = providerStatus(e);
  if (s === 401 || s === 403) return false;
  return s === undefined ? null : true;
}
