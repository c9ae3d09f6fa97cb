// DigitalOcean API v2 shapes (the fields we read) and their mapping to the unified model.
import {
  emptyToNull,
  instanceId,
  MANAGED_TAG,
  splitTags,
  type ActionStatus,
  type Image,
  type Instance,
  type InstanceStatus,
  type ProviderAction,
  type Region,
  type Size,
  type Snapshot,
} from '../cloud-provider.js';

export interface DoNetwork {
  ip_address: string;
  type: 'public' | 'private';
}
export interface DoDroplet {
  id: number;
  name: string;
  status: 'new' | 'active' | 'off' | 'archive';
  created_at?: string;
  networks?: { v4?: DoNetwork[]; v6?: DoNetwork[] };
  region?: { slug: string };
  size?: { slug: string; price_monthly?: number };
  size_slug?: string;
  image?: { id?: number; slug?: string | null; name?: string; distribution?: string };
  tags?: string[];
}
export interface DoAction {
  id: number;
  status: 'in-progress' | 'completed' | 'errored';
  type: string;
  started_at?: string;
  completed_at?: string | null;
  resource_id?: number | null;
}
export interface DoPage {
  links?: { pages?: { next?: string; last?: string } };
  meta?: { total?: number };
}
export interface DoSize {
  slug: string;
  vcpus: number;
  memory: number;
  disk: number;
  price_monthly: number;
  price_hourly: number;
  regions: string[];
  available: boolean;
}
export interface DoImage {
  id: number;
  name: string;
  slug?: string | null;
  distribution?: string;
  type?: string;
}
export interface DoRegion {
  slug: string;
  name: string;
  available: boolean;
}
export interface DoSnapshot {
  id: string;
  name: string;
  created_at?: string;
  resource_id?: string;
  size_gigabytes?: number;
}

const STATUS: Record<DoDroplet['status'], InstanceStatus> = { new: 'provisioning', active: 'running', off: 'off', archive: 'unknown' };

export function doInstance(d: DoDroplet): Instance {
  const v4 = d.networks?.v4 ?? [];
  const { tags, labels } = splitTags(d.tags ?? []);
  return {
    id: instanceId('digitalocean', String(d.id)),
    provider: 'digitalocean',
    provider_id: String(d.id),
    name: d.name,
    status: STATUS[d.status] ?? 'unknown',
    raw_status: d.status,
    ipv4: emptyToNull(v4.find((n) => n.type === 'public')?.ip_address),
    ipv6: emptyToNull(d.networks?.v6?.find((n) => n.type === 'public')?.ip_address),
    private_ip: emptyToNull(v4.find((n) => n.type === 'private')?.ip_address),
    region: d.region?.slug ?? null,
    size: d.size?.slug ?? d.size_slug ?? null,
    image: d.image?.slug ?? (d.image?.id !== undefined ? String(d.image.id) : null),
    tags,
    labels,
    created_at: d.created_at ?? null,
    price_monthly: typeof d.size?.price_monthly === 'number' ? d.size.price_monthly : null,
    managed: tags.includes(MANAGED_TAG),
  };
}

const ACTION: Record<DoAction['status'], ActionStatus> = { 'in-progress': 'in_progress', completed: 'completed', errored: 'errored' };

export function doAction(a: DoAction): ProviderAction {
  return {
    id: String(a.id),
    provider: 'digitalocean',
    type: a.type,
    status: ACTION[a.status] ?? 'in_progress',
    raw_status: a.status,
    resource_id: a.resource_id != null ? String(a.resource_id) : null,
    started_at: a.started_at ?? null,
    completed_at: a.completed_at ?? null,
  };
}

export const doSize = (s: DoSize): Size => ({
  provider: 'digitalocean',
  slug: s.slug,
  vcpus: s.vcpus,
  memory_mb: s.memory,
  disk_gb: s.disk,
  price_hourly: s.price_hourly,
  price_monthly: s.price_monthly,
  currency: 'USD',
  regions: s.regions ?? [],
});

export const doImage = (i: DoImage): Image => ({
  provider: 'digitalocean',
  id: String(i.id),
  slug: i.slug ?? null,
  name: i.name,
  distribution: i.distribution ?? null,
  type: i.type ?? 'base',
});

export const doRegion = (r: DoRegion): Region => ({
  provider: 'digitalocean',
  slug: r.slug,
  name: r.name,
  available: r.available,
  country: null,
});

export const doSnapshot = (s: DoSnapshot): Snapshot => ({
  provider: 'digitalocean',
  id: String(s.id),
  name: s.name,
  resource_id: s.resource_id ?? null,
  created_at: s.created_at ?? null,
  size_gb: s.size_gigabytes ?? null,
  status: 'available',
});

export function doErrorBody(body: unknown): { code?: string; message?: string; request_id?: string } {
  const b = (body ?? {}) as { id?: unknown; message?: unknown; request_id?: unknown };
  return {
    code: typeof b.id === 'string' ? b.id : undefined,
    message: typeof b.message === 'string' ? b.message : undefined,
    request_id: typeof b.request_id === 'string' ? b.request_id : undefined,
  };
}
