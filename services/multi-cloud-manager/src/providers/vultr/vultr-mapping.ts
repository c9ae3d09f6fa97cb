// Vultr API v2 shapes (the fields we read) and their mapping to the unified model.
import {
  emptyToNull,
  instanceId,
  MANAGED_TAG,
  splitTags,
  type Image,
  type Instance,
  type InstanceStatus,
  type Region,
  type Size,
  type Snapshot,
} from '../cloud-provider.js';

export interface VuInstance {
  id: string;
  label?: string;
  hostname?: string;
  os?: string;
  os_id?: number;
  main_ip?: string;
  v6_main_ip?: string;
  v6_networks?: Array<{ main_ip?: string }>;
  internal_ip?: string;
  region?: string;
  plan?: string;
  date_created?: string;
  status?: string;
  power_status?: string;
  server_status?: string;
  tags?: string[];
}
export interface VuPage {
  meta?: { total?: number; links?: { next?: string; prev?: string } };
}
export interface VuPlan {
  id: string;
  vcpu_count: number;
  ram: number;
  disk: number;
  monthly_cost: number;
  hourly_cost?: number;
  locations?: string[];
}
export interface VuOs {
  id: number;
  name: string;
  family?: string;
  arch?: string;
}
export interface VuRegion {
  id: string;
  city?: string;
  country?: string;
}
export interface VuSnapshot {
  id: string;
  date_created?: string;
  description?: string;
  size?: number;
  status?: string;
}

export function vultrStatus(v: VuInstance): InstanceStatus {
  switch (v.status) {
    case 'pending':
    case 'resizing':
      return 'provisioning';
    case 'suspended':
      return 'error';
    case 'active':
      if (v.power_status === 'stopped') return 'off';
      if (v.power_status === 'running') return v.server_status === 'installingbooting' ? 'provisioning' : 'running';
      return 'unknown';
    default:
      return 'unknown';
  }
}

export function vuInstance(v: VuInstance, price?: number | null): Instance {
  const { tags, labels } = splitTags(v.tags ?? []);
  return {
    id: instanceId('vultr', v.id),
    provider: 'vultr',
    provider_id: v.id,
    name: v.label || v.hostname || v.id,
    status: vultrStatus(v),
    raw_status: [v.status, v.power_status, v.server_status].filter(Boolean).join('/'),
    ipv4: emptyToNull(v.main_ip),
    ipv6: emptyToNull(v.v6_main_ip ?? v.v6_networks?.[0]?.main_ip),
    private_ip: emptyToNull(v.internal_ip),
    region: v.region ?? null,
    size: v.plan ?? null,
    image: v.os ?? (v.os_id !== undefined ? String(v.os_id) : null),
    tags,
    labels,
    created_at: v.date_created ?? null,
    price_monthly: price ?? null,
    managed: tags.includes(MANAGED_TAG),
  };
}

/** Vultr publishes monthly prices; an hourly one is derived over 730 hours when absent. */
export const vuSize = (p: VuPlan): Size => ({
  provider: 'vultr',
  slug: p.id,
  vcpus: p.vcpu_count,
  memory_mb: p.ram,
  disk_gb: p.disk,
  price_hourly: p.hourly_cost ?? Math.round((p.monthly_cost / 730) * 10_000) / 10_000,
  price_monthly: p.monthly_cost,
  currency: 'USD',
  regions: p.locations ?? [],
});

export const vuImage = (o: VuOs): Image => ({
  provider: 'vultr',
  id: String(o.id),
  slug: String(o.id),
  name: o.name,
  distribution: o.family ?? null,
  type: 'os',
});

export const vuRegion = (r: VuRegion): Region => ({
  provider: 'vultr',
  slug: r.id,
  name: r.city ?? r.id,
  available: true,
  country: r.country ?? null,
});

export const vuSnapshot = (s: VuSnapshot): Snapshot => ({
  provider: 'vultr',
  id: s.id,
  name: s.description ?? s.id,
  resource_id: null,
  created_at: s.date_created ?? null,
  size_gb: typeof s.size === 'number' ? Math.round((s.size / 1024 ** 3) * 100) / 100 : null,
  status: s.status ?? 'unknown',
});

export function vuErrorBody(body: unknown): { message?: string } {
  const b = body as { error?: unknown } | undefined;
  return { message: typeof b?.error === 'string' && b.error ? b.error : undefined };
}
