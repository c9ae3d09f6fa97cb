import type { AddressPolicy, RegistryLink, RegistryRecord, ResolveAll } from '@droplet-mesh/udc-kit';
import type { CheckGuard } from '../checks/http-checker.js';
import { recoveryPolicySchema, type StaticTarget } from '../config.js';
import { checkAddress, type RecoveryStep, type Target } from '../domain/types.js';

/** Where the list of things to check comes from. */
export interface TargetSource {
  /** Every target; may be a few seconds stale (the registry client caches lists). */
  list(): Promise<Target[]>;
  /** One target read fresh, null when the source does not have it; throws when it cannot tell. */
  lookup(id: string): Promise<Target | null>;
}

/** Recovery policy when the target does not name one. */
export interface DefaultPolicies {
  service: RecoveryStep[];
  host: RecoveryStep[];
}

export class StaticTargetSource implements TargetSource {
  constructor(
    private targets: StaticTarget[],
    private policies: DefaultPolicies,
  ) {}
  async list(): Promise<Target[]> {
    return this.targets.map((t) => ({
      id: t.id,
      kind: t.kind,
      url: t.url,
      health_path: t.health_path,
      recovery: t.recovery ?? this.policies[t.kind],
      metadata: t.metadata,
      source: 'static',
    }));
  }
  async lookup(id: string): Promise<Target | null> {
    return (await this.list()).find((t) => t.id === id) ?? null;
  }
}

function declaredHealthPath(r: RegistryRecord): string | undefined {
  const fromMeta = r.metadata?.health_path;
  return r.health_path ?? (typeof fromMeta === 'string' && /^\/\S*$/.test(fromMeta) ? fromMeta : undefined);
}

/**
 * The target a registry record describes, or undefined when there is nothing to check:
 * no HTTP URL, or a host that does not say where it answers (a machine serves HTTP only
 * if something on it was set up to; GET http://<ip>/health would fail on every host).
 */
export function targetFromRecord(r: RegistryRecord, policies: DefaultPolicies): Target | undefined {
  if (!/^https?:\/\//.test(r.url)) return undefined;
  const kind = r.kind === 'host' ? 'host' : 'service';
  const healthPath = declaredHealthPath(r);
  if (kind === 'host' && !healthPath) return undefined;
  const metadata = r.metadata ?? {};
  const policy = recoveryPolicySchema.safeParse(metadata.recovery);
  return {
    id: r.id,
    kind,
    url: r.url,
    health_path: healthPath ?? '/health',
    recovery: policy.success ? policy.data : policies[kind],
    metadata,
    source: 'registry',
    heartbeat: r.status,
    ...(r.updated_at ? { updated_at: r.updated_at } : {}),
    // A record that heartbeats for itself (registered with its own key) is a mesh droplet.
    guard: r.steward === r.id ? 'droplet' : 'app',
  };
}

/** Where registry records may point: the policy per guard, and how names resolve. */
export interface TargetAddressGuard {
  policies: Record<CheckGuard, AddressPolicy>;
  resolve: ResolveAll;
  /** Told once per record and address when a record is refused. */
  onRefused?: (id: string, url: string, reason: string) => void;
  /** How long a name's answer is reused (default 10 s). */
  cacheMs?: number;
  now?: () => number;
}

/**
 * Whether a target's check address passes its policy. A health_path that leaves the
 * record's origin (`//other.host/...`) is refused outright; a name counts by every address
 * it resolves to (the probe checks again at connect time).
 */
export class TargetAddressFilter {
  private cache = new Map<string, { at: number; ok: boolean; reason?: string }>();
  private told = new Set<string>();
  constructor(private g: TargetAddressGuard) {}

  async allowed(t: Target): Promise<boolean> {
    if (!t.guard) return true;
    let verdict: { ok: boolean; reason?: string };
    try {
      const base = new URL(t.url);
      const check = new URL(checkAddress(t));
      if (check.origin !== base.origin) verdict = { ok: false, reason: 'its health path points at another host' };
      else {
        const host = check.hostname.startsWith('[') ? check.hostname.slice(1, -1) : check.hostname;
        const port = Number(check.port) || (check.protocol === 'https:' ? 443 : 80);
        verdict = await this.check(t.guard, host, port);
      }
    } catch {
      verdict = { ok: false, reason: 'its URL is not valid' };
    }
    if (!verdict.ok) {
      const key = `${t.id} ${t.url} ${t.health_path}`;
      if (!this.told.has(key)) {
        this.told.add(key);
        if (this.told.size > 10_000) this.told.clear();
        this.g.onRefused?.(t.id, t.url, verdict.reason ?? 'refused');
      }
    }
    return verdict.ok;
  }

  private async check(guard: CheckGuard, host: string, port: number): Promise<{ ok: boolean; reason?: string }> {
    const now = (this.g.now ?? Date.now)();
    const key = `${guard} ${host} ${port}`;
    const hit = this.cache.get(key);
    if (hit && now - hit.at < (this.g.cacheMs ?? 10_000)) return hit;
    const v = await this.g.policies[guard].check(host, port, this.g.resolve);
    const out = { at: now, ok: v.ok, reason: v.reason };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, out);
    return out;
  }
}

/** Every record the registry knows that has something to check. */
export class RegistryTargetSource implements TargetSource {
  constructor(
    private registry: () => RegistryLink | undefined,
    private policies: DefaultPolicies,
    /** Records whose address the policy refuses are not targets (never checked, listed or recovered). */
    private filter?: TargetAddressFilter,
  ) {}
  private async allowed(t: Target | undefined): Promise<Target | undefined> {
    if (!t) return undefined;
    return !this.filter || (await this.filter.allowed(t)) ? t : undefined;
  }
  async list(): Promise<Target[]> {
    const link = this.registry();
    if (!link) return [];
    const records = await link.list();
    const targets = await Promise.all(records.map((r) => this.allowed(targetFromRecord(r, this.policies))));
    return targets.filter((t): t is Target => !!t);
  }
  /** `get` goes to the registry over HTTP, past the client's list cache. */
  async lookup(id: string): Promise<Target | null> {
    const link = this.registry();
    if (!link) return null;
    const record = await link.get(id);
    return (record && (await this.allowed(targetFromRecord(record, this.policies)))) ?? null;
  }
}

/**
 * Static targets plus the registry's (the first source that has an id wins). A registry
 * that cannot be read keeps its last known list (a registry outage must not look like
 * every target vanished).
 */
export class CombinedTargetSource implements TargetSource {
  private lastGood = new Map<TargetSource, Target[]>();
  constructor(
    private sources: TargetSource[],
    private onError: (err: unknown) => void = () => undefined,
  ) {}
  async list(): Promise<Target[]> {
    const byId = new Map<string, Target>();
    for (const s of this.sources) {
      let items: Target[];
      try {
        items = await s.list();
        this.lastGood.set(s, items);
      } catch (err) {
        this.onError(err);
        items = this.lastGood.get(s) ?? [];
      }
      for (const t of items) if (!byId.has(t.id)) byId.set(t.id, t);
    }
    return [...byId.values()];
  }
  async lookup(id: string): Promise<Target | null> {
    let failure: unknown;
    for (const s of this.sources) {
      try {
        const t = await s.lookup(id);
        if (t) return t;
      } catch (err) {
        failure ??= err;
      }
    }
    // Not found anywhere we could ask, but one source could not answer: unknown, not gone.
    if (failure !== undefined) throw failure;
    return null;
  }
}
