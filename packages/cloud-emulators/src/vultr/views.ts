import { isDone } from '../core/timed.js';
import { operatingSystems, vultrRegions, type VultrPlan } from './catalog.js';
import type { VultrInstance, VultrSnapshot } from './state.js';

/** Vultr writes dates as `2020-10-10T01:56:20+00:00`. */
function vultrDate(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

/** JSON shapes exactly as Vultr API v2 returns them. */
export function instanceView(i: VultrInstance, defaultPassword?: string) {
  const os = operatingSystems.find((o) => o.id === i.osId);
  return {
    id: i.id,
    os: os?.name ?? 'Custom',
    ram: i.plan.ram,
    disk: i.plan.disk,
    main_ip: i.ips?.ipv4 ?? '0.0.0.0',
    vcpu_count: i.plan.vcpu_count,
    region: i.region,
    ...(defaultPassword ? { default_password: defaultPassword } : {}),
    date_created: vultrDate(i.createdAt),
    status: i.status,
    power_status: i.powerStatus,
    server_status: i.serverStatus,
    allowed_bandwidth: i.plan.bandwidth,
    netmask_v4: i.ips ? '255.255.254.0' : '',
    gateway_v4: i.ips ? i.ips.ipv4.replace(/\.\d+$/, '.1') : '0.0.0.0',
    v6_networks: i.ips && i.ipv6 ? [{ network: i.ips.ipv6Network, main_ip: i.ips.ipv6, network_size: 64 }] : [],
    hostname: i.hostname,
    label: i.label,
    tag: i.tags[0] ?? '',
    internal_ip: i.ips?.privateIp ?? '',
    kvm: `https://my.vultr.com/subs/vps/novnc/api.php?data=${i.id}`,
    os_id: i.osId,
    app_id: 0,
    image_id: '',
    firewall_group_id: '',
    features: i.ipv6 ? ['ipv6'] : [],
    plan: i.plan.id,
    tags: [...i.tags],
  };
}

export function planView(p: VultrPlan) {
  return {
    id: p.id,
    name: p.id,
    vcpu_count: p.vcpu_count,
    ram: p.ram,
    disk: p.disk,
    disk_count: 1,
    bandwidth: p.bandwidth,
    monthly_cost: p.monthly_cost,
    type: p.type,
    locations: vultrRegions.map((r) => r.id),
  };
}

export function snapshotView(s: VultrSnapshot, now: number) {
  return {
    id: s.id,
    date_created: vultrDate(s.createdAt),
    description: s.description,
    size: s.size,
    compressed_size: Math.round(s.size / 3),
    status: isDone(s, now) ? 'complete' : 'pending',
    os_id: s.osId,
    app_id: 0,
  };
}
