import type { RegistryLink, RegistryRecord } from '@droplet-mesh/udc-kit';
import { recoveryPolicySchema, type StaticTarget } from '../config.js';
import type { RecoveryStep, Target } from '../domain/types.js';

/** Where the list of things to check comes from. */
export interface TargetSource {
  list(): Promise<Target[]>;
}

export class StaticTargetSource implements TargetSource {
  constructor(private targets: StaticTarget[], private defaultPolicy: RecoveryStep[]) {}
  async list(): Promise<Target[]> {
    return this.targets.map((t) => ({
      id: t.id,
      url: t.url,
      health_path: t.health_path,
      recovery: t.recovery ?? this.defaultPolicy,
      metadata: t.metadata,
      source: 'static',
    }));
  }
}

export function targetFromRecord(r: RegistryRecord, defaultPolicy: RecoveryStep[]): Target | undefined {
  if (!/^https?:\/\//.test(r.url)) return undefined;
  const metadata = r.metadata ?? {};
  const policy = recoveryPolicySchema.safeParse(metadata.recovery);
  return {
    id: r.id,
    url: r.url,
    health_path: r.health_path ?? '/health',
    recovery: policy.success ? policy.data : defaultPolicy,
    metadata,
    source: 'registry',
    heartbeat: r.status,
  };
}

/** Every record the registry knows that has an HTTP URL. */
export class RegistryTargetSource implements TargetSource {
  constructor(private registry: () => RegistryLink | undefined, private defaultPolicy: RecoveryStep[]) {}
  async list(): Promise<Target[]> {
    const link = this.registry();
    if (!link) return [];
    const records = await link.list();
    return records.map((r) => targetFromRecord(r, this.defaultPolicy)).filter((t): t is Target => !!t);
  }
}

/**
 * Static targets plus the registry's. A registry that cannot be read keeps its last
 * known list (a registry outage must not look like every target vanished).
 */
export class CombinedTargetSource implements TargetSource {
  private lastGood = new Map<TargetSource, Target[]>();
  constructor(private sources: TargetSource[], private onError: (err: unknown) => void = () => undefined) {}
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
}
