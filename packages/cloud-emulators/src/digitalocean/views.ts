import { iso } from '../core/timed.js';
import { regionFeatures, regions, sizes, type DoImage, type DoSize } from './catalog.js';
import type { DoAction, DoSnapshot, Droplet } from './state.js';

/** JSON shapes exactly as DigitalOcean's API v2 returns them. */
export function sizeView(size: DoSize) {
  return {
    slug: size.slug,
    memory: size.memory,
    vcpus: size.vcpus,
    disk: size.disk,
    transfer: size.transfer,
    price_monthly: size.price_monthly,
    price_hourly: size.price_hourly,
    regions: regions.map((r) => r.slug),
    available: true,
    description: size.description,
    disk_info: [{ type: 'local', size: { amount: size.disk, unit: 'gib' } }],
  };
}

export function regionView(slug: string) {
  const region = regions.find((r) => r.slug === slug)!;
  return { name: region.name, slug: region.slug, features: regionFeatures, available: true, sizes: sizes.map((s) => s.slug) };
}

export function imageView(image: DoImage) {
  return {
    id: image.id,
    name: image.name,
    type: image.type,
    distribution: image.distribution,
    slug: image.slug,
    public: image.type === 'base',
    regions: regions.map((r) => r.slug),
    created_at: image.created_at,
    min_disk_size: image.min_disk_size,
    size_gigabytes: image.size_gigabytes,
    description: image.description,
    tags: [],
    status: 'available',
    error_message: '',
  };
}

export function dropletView(d: Droplet) {
  const size = sizes.find((s) => s.slug === d.sizeSlug)!;
  const v4 = d.networks
    ? [
        { ip_address: d.networks.ipv4, netmask: '255.255.240.0', gateway: d.networks.ipv4.replace(/\.\d+$/, '.1'), type: 'public' },
        {
          ip_address: d.networks.privateIp,
          netmask: '255.255.0.0',
          gateway: d.networks.privateIp.replace(/\.\d+$/, '.1'),
          type: 'private',
        },
      ]
    : [];
  const v6 =
    d.networks && d.ipv6
      ? [{ ip_address: d.networks.ipv6, netmask: 64, gateway: d.networks.ipv6.replace(/::1$/, '::'), type: 'public' }]
      : [];
  return {
    id: d.id,
    name: d.name,
    memory: size.memory,
    vcpus: size.vcpus,
    disk: size.disk,
    disk_info: [{ type: 'local', size: { amount: size.disk, unit: 'gib' } }],
    locked: false,
    status: d.status,
    kernel: null,
    created_at: iso(d.createdAt),
    features: ['droplet_agent', 'private_networking', ...(d.ipv6 ? ['ipv6'] : [])],
    backup_ids: [],
    next_backup_window: null,
    snapshot_ids: [...d.snapshotIds],
    image: imageView(d.image),
    volume_ids: [],
    size: sizeView(size),
    size_slug: size.slug,
    networks: { v4, v6 },
    region: regionView(d.regionSlug),
    tags: [...d.tags],
    vpc_uuid: d.vpcUuid,
  };
}

export function actionView(a: DoAction, now: number) {
  const done = a.completed || now >= a.startedAt + a.durationMs;
  return {
    id: a.id,
    status: done ? 'completed' : 'in-progress',
    type: a.type,
    started_at: iso(a.startedAt),
    completed_at: done ? iso(a.startedAt + a.durationMs) : null,
    resource_id: a.resourceId,
    resource_type: 'droplet',
    region: regionView(a.regionSlug),
    region_slug: a.regionSlug,
  };
}

/** A snapshot as `/v2/snapshots` lists it (string id, resource fields). */
export function snapshotView(s: DoSnapshot) {
  return {
    id: String(s.id),
    name: s.name,
    created_at: iso(s.createdAt),
    regions: [s.regionSlug],
    min_disk_size: s.minDiskSize,
    size_gigabytes: s.sizeGigabytes,
    resource_id: String(s.dropletId),
    resource_type: 'droplet',
    tags: [],
  };
}

/** A snapshot as `/v2/droplets/{id}/snapshots` lists it (integer id, type). */
export function dropletSnapshotView(s: DoSnapshot) {
  return {
    id: s.id,
    name: s.name,
    created_at: iso(s.createdAt),
    regions: [s.regionSlug],
    min_disk_size: s.minDiskSize,
    size_gigabytes: s.sizeGigabytes,
    type: 'snapshot',
  };
}
