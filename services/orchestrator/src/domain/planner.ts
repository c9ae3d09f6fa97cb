import { createHash } from 'node:crypto';
import type { Attrs, Kind, LiveState, Managed, Resource } from './resources.js';
import { kindOf } from './resources.js';

export type StepAction = 'create' | 'update' | 'replace' | 'deploy' | 'delete';

export interface Change {
  field: string;
  before: unknown;
  after: unknown;
}

export interface Step {
  /** 1-based position in the plan: the order apply runs them in. */
  n: number;
  id: string;
  kind: Kind;
  action: StepAction;
  before: Attrs | null;
  after: Attrs | null;
  changes: Change[];
  /** Deletes something, or replaces a server (its disk goes with it). */
  destructive: boolean;
  /** Why a deploy or update happens. */
  reasons: string[];
  /** Monthly cost change of this step, in `currency`. */
  cost_monthly_delta?: number;
  currency?: string;
  /** A step apply cannot run (no API for it): apply skips it and says so. */
  unsupported?: string;
  /** Where to find the resource (servers: the provider's instance). */
  ref?: { provider: string; provider_id: string; price_monthly?: number | null };
  /** A placement removed from a service that stays: deployer servers other placements of its environment still use (they keep serving it). */
  keep_assigned?: string[];
}

export interface Price {
  price_monthly: number | null;
  currency: string;
}
/** `<provider>/<size>` → the catalog's monthly price. */
export type PriceBook = Record<string, Price>;

export interface PlanResult {
  steps: Step[];
  /** Per currency: what the stack will cost per month more (negative: less) once applied. */
  cost: { monthly_delta: Record<string, number>; unknown_prices: string[] };
  summary: Record<StepAction, number> & { unsupported: number };
}

/** The fields of each kind that apply compares; a server's are all "replace" (no provider can resize in place here). */
const COMPARED: Record<Kind, readonly string[]> = {
  server: ['provider', 'region', 'size', 'image', 'tags', 'provision'],
  project: ['description'],
  environment: ['env'],
  service: ['type', 'domain', 'health_path', 'env', 'replicas'],
  /** Which deployer servers run it (with replicas), and which of them serve its environment. */
  placement: ['servers', 'assigned'],
  release: ['image', 'git'],
  https: [],
  route: ['domain', 'upstreams', 'health_path', 'https', 'websocket'],
  alerts: ['emails', 'webhooks'],
};

/** Creation order; deletes run in the reverse order, after every create and update (routes' deletes first, to free domains). */
const CREATE_PHASE: Record<Kind, number> = {
  server: 1,
  project: 2,
  environment: 3,
  service: 4,
  placement: 5,
  release: 6,
  https: 7,
  route: 8,
  alerts: 9,
};
const DELETE_PHASE: Record<Kind, number> = {
  route: 0,
  alerts: 1,
  https: 9,
  release: 10,
  placement: 11,
  service: 12,
  environment: 13,
  project: 14,
  server: 15,
};

/** The reason of a placement delete whose service stays (runs before its deploy; undone by putting it back). */
export const PLACEMENT_DROPPED =
  "removed before the service's deploy, which spreads it over its environment's servers again; the stack's servers stop serving the environment";

/** Stable JSON: object keys sorted, so equal values compare equal. */
export function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v as object)
      .sort()
      .filter((k) => (v as Attrs)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stable((v as Attrs)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v ?? null);
}

export function diff(kind: Kind, before: Attrs, after: Attrs): Change[] {
  return COMPARED[kind]
    .filter((f) => stable(before[f]) !== stable(after[f]))
    .map((field) => ({ field, before: before[field] ?? null, after: after[field] ?? null }));
}

/** A digest of the live state a plan was made from: apply refuses a plan whose digest no longer matches. */
export function liveRevision(live: LiveState, stackRevision: number): string {
  return createHash('sha256').update(stable({ live, stackRevision })).digest('hex').slice(0, 32);
}

const priceOf = (book: PriceBook, provider: unknown, size: unknown): Price | undefined => book[`${String(provider)}/${String(size)}`];

/**
 * Desired resources + live state + what the stack created before → the exact steps, in
 * dependency order. Pure: no I/O, the same inputs give the same plan.
 */
export function plan(desired: Resource[], live: LiveState, managed: Managed, prices: PriceBook = {}): PlanResult {
  const steps: Omit<Step, 'n'>[] = [];
  const byId = new Map(desired.map((r) => [r.id, r]));
  const changedServices = new Set<string>();
  const changedPlacements = new Set<string>();
  const changedEnvs = new Map<string, string[]>();
  const unknownPrices = new Set<string>();
  const cost = (provider: unknown, size: unknown): Price | undefined => {
    const p = priceOf(prices, provider, size);
    if (!p || p.price_monthly === null) unknownPrices.add(`${String(provider)}/${String(size)}`);
    return p;
  };

  for (const r of desired) {
    const l = live[r.id];
    if (r.kind === 'release') continue; // after services and environments are known
    if (!l) {
      const step: Omit<Step, 'n'> = {
        id: r.id,
        kind: r.kind,
        action: 'create',
        before: null,
        after: r.attrs,
        changes: [],
        destructive: false,
        reasons: [],
      };
      if (r.kind === 'server') {
        const p = cost(r.attrs.provider, r.attrs.size);
        if (p?.price_monthly != null) Object.assign(step, { cost_monthly_delta: p.price_monthly, currency: p.currency });
      }
      if (r.kind === 'service') changedServices.add(r.id);
      if (r.kind === 'placement') changedPlacements.add(r.id.replace(/^placement\//, 'service/'));
      steps.push(step);
      continue;
    }
    const changes = diff(r.kind, l.attrs, r.attrs);
    if (changes.length === 0) continue;
    if (r.kind === 'server') {
      const now = l.ref?.price_monthly ?? cost(l.attrs.provider, l.attrs.size)?.price_monthly ?? null;
      const next = cost(r.attrs.provider, r.attrs.size);
      steps.push({
        id: r.id,
        kind: r.kind,
        action: 'replace',
        before: l.attrs,
        after: r.attrs,
        changes,
        destructive: true,
        reasons: ['a server cannot change provider, region, size, image or tags in place: a new one is created, then the old one deleted'],
        ref: l.ref,
        ...(r.attrs.provision || l.attrs.provision
          ? {
              unsupported:
                'a provisioned server keeps its deployer id (<stack>-<server>-<index>), so it cannot be replaced in place: remove it from the file and apply, then add it back',
            }
          : {}),
        ...(now !== null && next?.price_monthly != null ? { cost_monthly_delta: next.price_monthly - now, currency: next.currency } : {}),
      });
      continue;
    }
    if (r.kind === 'service') changedServices.add(r.id);
    if (r.kind === 'placement') changedPlacements.add(r.id.replace(/^placement\//, 'service/'));
    if (r.kind === 'environment')
      changedEnvs.set(
        `${r.attrs.project}/${r.attrs.name}`,
        changes.map((c) => c.field),
      );
    steps.push({ id: r.id, kind: r.kind, action: 'update', before: l.attrs, after: r.attrs, changes, destructive: false, reasons: [] });
  }

  // A placement dropped from a service that stays: removed before its deploy, which moves the replicas.
  const early = new Set<string>();
  for (const [id, m] of Object.entries(managed))
    if (m.kind === 'placement' && m.created && !byId.has(id) && live[id] && byId.has(id.replace(/^placement\//, 'service/'))) {
      early.add(id);
      changedPlacements.add(id.replace(/^placement\//, 'service/'));
    }

  // Releases: deploy when the image differs, or when what the deploy reads (service, environment) changed.
  for (const r of desired) {
    if (r.kind !== 'release') continue;
    const l = live[r.id];
    const reasons: string[] = [];
    const changes = l ? diff('release', l.attrs, r.attrs) : [];
    if (!l) reasons.push('not deployed yet');
    else if (changes.length > 0) reasons.push(`source ${sourceText(l.attrs)} → ${sourceText(r.attrs)}`);
    const svcId = `service/${r.attrs.project}/${r.attrs.environment}/${r.attrs.service}`;
    if (l && changedServices.has(svcId)) reasons.push('the service changed (a deploy applies it)');
    if (l && changedPlacements.has(svcId)) reasons.push('its placement changed (a deploy moves it)');
    if (l && changedEnvs.has(`${r.attrs.project}/${r.attrs.environment}`)) reasons.push('the environment changed (a deploy applies it)');
    if (reasons.length === 0) continue;
    steps.push({
      id: r.id,
      kind: 'release',
      action: 'deploy',
      before: l?.attrs ?? null,
      after: r.attrs,
      changes,
      destructive: false,
      reasons,
    });
  }

  // Deletes: what this stack created that the file no longer has, and instances that carry the stack's label.
  const candidates = new Set<string>([
    ...Object.entries(managed)
      .filter(([, m]) => m.created)
      .map(([id]) => id),
    ...Object.entries(live)
      .filter(([id, l]) => l.kind === 'server' && id.startsWith('server/'))
      .map(([id]) => id),
  ]);
  // A release the stack deployed but no longer wants is undeployed (its containers, route and record go; its history stays).
  for (const [id, m] of Object.entries(managed)) if (m.kind === 'release' && !byId.has(id) && live[id]) candidates.add(id);
  const blocked = new Set<string>();
  const deletes = [...candidates]
    .filter((id) => !byId.has(id) && live[id])
    .sort((a, b) => DELETE_PHASE[kindOf(a)] - DELETE_PHASE[kindOf(b)] || a.localeCompare(b));
  for (const id of deletes) {
    const l = live[id];
    const kind = kindOf(id);
    const step: Omit<Step, 'n'> = { id, kind, action: 'delete', before: l.attrs, after: null, changes: [], destructive: true, reasons: [] };
    if (kind === 'https') step.reasons.push('HTTPS is switched off on the route; the certificate stays in proxy-manager');
    if (kind === 'placement') {
      const ref = `${String(l.attrs.project)}/${String(l.attrs.environment)}`;
      const keep = desired
        .filter((r) => r.kind === 'placement' && `${String(r.attrs.project)}/${String(r.attrs.environment)}` === ref)
        .flatMap((r) => r.attrs.assigned as string[]);
      if (keep.length > 0) step.keep_assigned = [...new Set(keep)].sort();
      step.reasons.push(early.has(id) ? PLACEMENT_DROPPED : "its servers stop serving the service's environment");
    }
    if (kind === 'environment' || kind === 'project') {
      const prefix = kind === 'environment' ? `service/${l.attrs.project}/${l.attrs.name}/` : `service/${l.attrs.name}/`;
      const stuck = [...blocked].filter((b) => b.startsWith(prefix));
      const stays = Object.keys(live).filter((x) => x.startsWith(prefix) && !deletes.includes(x));
      if (stuck.length > 0 || stays.length > 0)
        step.unsupported = `it still has services the deployer would keep: ${[...stuck, ...stays].join(', ')}`;
      if (step.unsupported) blocked.add(id);
    }
    if (kind === 'service' && step.unsupported) blocked.add(id);
    if (kind === 'server') {
      step.ref = l.ref;
      const price = l.ref?.price_monthly ?? cost(l.attrs.provider, l.attrs.size)?.price_monthly;
      const currency = priceOf(prices, l.attrs.provider, l.attrs.size)?.currency ?? 'USD';
      if (price != null) Object.assign(step, { cost_monthly_delta: -price, currency });
    }
    steps.push(step);
  }

  const ordered = steps
    .map((s, i) => ({ s, i }))
    .sort((a, b) => phase(a.s, early) - phase(b.s, early) || a.i - b.i)
    .map(({ s }, i) => ({ n: i + 1, ...s }));
  const monthly: Record<string, number> = {};
  for (const s of ordered)
    if (s.cost_monthly_delta !== undefined && !s.unsupported) {
      const c = s.currency ?? 'USD';
      monthly[c] = round2((monthly[c] ?? 0) + s.cost_monthly_delta);
    }
  const summary = { create: 0, update: 0, replace: 0, deploy: 0, delete: 0, unsupported: 0 };
  for (const s of ordered) {
    summary[s.action]++;
    if (s.unsupported) summary.unsupported++;
  }
  return { steps: ordered, cost: { monthly_delta: monthly, unknown_prices: [...unknownPrices].sort() }, summary };
}

/** An image, or git url@ref[:path]. */
export function sourceText(a: Attrs): string {
  const g = a.git as { url: string; ref: string; path?: string | null } | null | undefined;
  if (g) return `${g.url}@${g.ref}${g.path ? `:${g.path}` : ''}`;
  return typeof a.image === 'string' ? a.image : '(an uploaded archive)';
}

/** `early`: deletes that run where their kind is created (a placement dropped from a service that stays: before its deploy). */
const phase = (s: Omit<Step, 'n'>, early: Set<string>) =>
  s.action === 'delete' && !early.has(s.id) ? DELETE_PHASE[s.kind] : CREATE_PHASE[s.kind];
const round2 = (n: number) => Math.round(n * 100) / 100;
