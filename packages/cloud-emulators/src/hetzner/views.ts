import { iso, progressOf } from '../core/timed.js';
import { locations, type HetznerLocation, type HetznerServerType } from './catalog.js';
import type { HetznerAction, HetznerImage, HetznerServer } from './state.js';

const vat = 1.19;
const price = (n: number) => n.toFixed(10);

/** JSON shapes exactly as Hetzner Cloud API v1 returns them. */
export function serverTypeView(t: HetznerServerType) {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    cores: t.cores,
    memory: t.memory,
    disk: t.disk,
    deprecated: false,
    prices: locations.map((l) => ({
      location: l.name,
      price_hourly: { net: price(t.hourly), gross: price(t.hourly * vat) },
      price_monthly: { net: price(t.monthly), gross: price(t.monthly * vat) },
      included_traffic: 21_990_232_555_520,
      price_per_tb_traffic: { net: price(1), gross: price(vat) },
    })),
    storage_type: 'local',
    cpu_type: t.cpu_type,
    category: t.cpu_type === 'dedicated' ? 'dedicated_vcpu' : 'shared_vcpu',
    architecture: t.architecture,
    deprecation: null,
    locations: locations.map((l) => ({
      id: l.id,
      name: l.name,
      deprecation: null,
      recommended: l.network_zone === 'eu-central',
      available: true,
    })),
  };
}

export function locationView(l: HetznerLocation) {
  return { ...l };
}

export function imageView(i: HetznerImage) {
  return {
    id: i.id,
    type: i.type,
    status: i.status,
    name: i.name,
    description: i.description,
    image_size: i.imageSize,
    disk_size: i.diskSize,
    created: iso(i.created),
    created_from: i.createdFrom,
    bound_to: i.boundTo,
    os_flavor: i.osFlavor,
    os_version: i.osVersion,
    rapid_deploy: i.type === 'system',
    protection: { delete: false },
    deprecated: null,
    deleted: null,
    labels: { ...i.labels },
    architecture: 'x86',
  };
}

export function actionView(a: HetznerAction, now: number) {
  const done = a.done || progressOf(a, now) === 100;
  return {
    id: a.id,
    command: a.command,
    status: done ? 'success' : 'running',
    started: iso(a.startedAt),
    finished: done ? iso(a.startedAt + a.durationMs) : null,
    progress: done ? 100 : progressOf(a, now),
    resources: a.resources.map((r) => ({ ...r })),
    error: null,
  };
}

export function serverView(s: HetznerServer, image: HetznerImage | undefined) {
  const reversed = s.ips.ipv4.split('.').reverse().join('.');
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    created: iso(s.created),
    public_net: {
      ipv4: { id: s.ipv4Id, ip: s.ips.ipv4, blocked: false, dns_ptr: `static.${reversed}.clients.your-server.de` },
      ipv6: { id: s.ipv6Id, ip: `${s.ips.ipv6Network}/64`, blocked: false, dns_ptr: [] },
      floating_ips: [],
      firewalls: [],
    },
    private_net: [],
    server_type: serverTypeView(s.serverType),
    location: locationView(s.location),
    image: image ? imageView(image) : null,
    iso: null,
    rescue_enabled: false,
    locked: s.lockingActionId !== undefined,
    backup_window: null,
    outgoing_traffic: 0,
    ingoing_traffic: 0,
    included_traffic: 21_990_232_555_520,
    protection: { delete: false, rebuild: false },
    labels: { ...s.labels },
    volumes: [],
    load_balancers: [],
    primary_disk_size: s.serverType.disk,
    placement_group: null,
  };
}
