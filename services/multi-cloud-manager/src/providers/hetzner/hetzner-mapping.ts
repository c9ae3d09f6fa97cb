// Hetzner Cloud API v1 shapes (the fields we read) and their mapping to the unified model.
import {
  emptyToNull,
  instanceId,
  MANAGED_TAG,
  type ActionStatus,
  type Image,
  type Instance,
  type InstanceStatus,
  type ProviderAction,
  type Region,
  type Size,
  type Snapshot,
} from '../cloud-provider.js';

interface Price {
  location: string;
  price_hourly: { gross: string };
  price_monthly: { gross: string };
}
export interface HzServerType {
  id: number;
  name: string;
  cores: number;
  memory: number;
  disk: number;
  prices: Price[];
  deprecated?: boolean;
}
export interface HzServer {
  id: number;
  name: string;
  status: string;
  created?: string;
  public_net?: { ipv4?: { ip: string } | null; ipv6?: { ip: string } | null };
  private_net?: Array<{ ip?: string }>;
  server_type?: HzServerType;
  location?: { name: string };
  image?: { id: number; name?: string | null; description?: string } | null;
  labels?: Record<string, string>;
}
export interface HzAction {
  id: number;
  command: string;
  status: 'running' | 'success' | 'error';
  started?: string;
  finished?: string | null;
  resources?: Array<{ id: number; type: string }>;
  error?: { code: string; message: string } | null;
}
export interface HzImage {
  id: number;
  type: string;
  status: string;
  name?: string | null;
  description?: string;
  os_flavor?: string;
  created?: string;
  image_size?: number | null;
  created_from?: { id: number; name: string } | null;
}
export interface HzLocation {
  id: number;
  name: string;
  description?: string;
  country?: string;
  city?: string;
}
export interface HzPage {
  meta?: { pagination?: { page: number; next_page: number | null; last_page: number | null; total_entries?: number | null } };
}

const STATUS: Record<string, InstanceStatus> = {
  running: 'running',
  initializing: 'provisioning',
  starting: 'provisioning',
  migrating: 'provisioning',
  rebuilding: 'provisioning',
  stopping: 'off',
  off: 'off',
  deleting: 'deleting',
  unknown: 'unknown',
};

/** Hetzner has labels, not tags: a tag is a label whose value is `true` (or empty). */
const isTagValue = (v: string) => v === 'true' || v === '';

export function hzInstance(s: HzServer): Instance {
  const all = s.labels ?? {};
  const tags = Object.keys(all).filter((k) => isTagValue(all[k]));
  const labels = Object.fromEntries(Object.entries(all).filter(([, v]) => !isTagValue(v)));
  const location = s.location?.name ?? null;
  const prices = s.server_type?.prices ?? [];
  const price = prices.find((p) => p.location === location) ?? prices[0];
  const monthly = price ? Number(price.price_monthly.gross) : NaN;
  return {
    id: instanceId('hetzner', String(s.id)),
    provider: 'hetzner',
    provider_id: String(s.id),
    name: s.name,
    status: STATUS[s.status] ?? 'unknown',
    raw_status: s.status,
    ipv4: emptyToNull(s.public_net?.ipv4?.ip),
    // Hetzner gives the server's /64; the first address is the host's.
    ipv6: emptyToNull(s.public_net?.ipv6?.ip?.replace(/::\/64$/, '::1')),
    private_ip: emptyToNull(s.private_net?.[0]?.ip),
    region: location,
    size: s.server_type?.name ?? null,
    image: s.image?.name ?? (s.image ? String(s.image.id) : null),
    tags,
    labels,
    created_at: s.created ?? null,
    price_monthly: Number.isFinite(monthly) ? monthly : null,
    managed: MANAGED_TAG in all,
  };
}

export function hzLabels(tags: string[], labels: Record<string, string>): Record<string, string> {
  return { ...labels, ...Object.fromEntries(tags.map((t) => [t, 'true'])), [MANAGED_TAG]: 'true' };
}

const ACTION: Record<HzAction['status'], ActionStatus> = { running: 'in_progress', success: 'completed', error: 'errored' };

export function hzAction(a: HzAction, type?: string): ProviderAction {
  return {
    id: String(a.id),
    provider: 'hetzner',
    type: type ?? a.command,
    status: ACTION[a.status] ?? 'in_progress',
    raw_status: a.status,
    resource_id: a.resources?.find((r) => r.type === 'server')?.id?.toString() ?? null,
    started_at: a.started ?? null,
    completed_at: a.finished ?? null,
    ...(a.error ? { error: `${a.error.code}: ${a.error.message}` } : {}),
  };
}

export function hzSize(t: HzServerType): Size {
  const p = t.prices[0];
  return {
    provider: 'hetzner',
    slug: t.name,
    vcpus: t.cores,
    memory_mb: Math.round(t.memory * 1024),
    disk_gb: t.disk,
    price_hourly: p ? Number(p.price_hourly.gross) : null,
    price_monthly: p ? Number(p.price_monthly.gross) : null,
    currency: 'EUR',
    regions: t.prices.map((x) => x.location),
  };
}

export const hzImage = (i: HzImage): Image => ({
  provider: 'hetzner',
  id: String(i.id),
  slug: i.name ?? null,
  name: i.description ?? i.name ?? String(i.id),
  distribution: i.os_flavor ?? null,
  type: i.type,
});

export const hzRegion = (l: HzLocation): Region => ({
  provider: 'hetzner',
  slug: l.name,
  name: l.city ?? l.description ?? l.name,
  available: true,
  country: l.country ?? null,
});

export const hzSnapshot = (i: HzImage): Snapshot => ({
  provider: 'hetzner',
  id: String(i.id),
  name: i.description ?? i.name ?? String(i.id),
  resource_id: i.created_from ? String(i.created_from.id) : null,
  created_at: i.created ?? null,
  size_gb: i.image_size ?? null,
  status: i.status,
});

export function hzErrorBody(body: unknown): { code?: string; message?: string } {
  const e = (body as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
  return { code: typeof e?.code === 'string' ? e.code : undefined, message: typeof e?.message === 'string' ? e.message : undefined };
}
