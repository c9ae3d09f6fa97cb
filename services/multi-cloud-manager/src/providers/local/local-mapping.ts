// Docker containers as instances: labels carry the mesh metadata.
import type Docker from 'dockerode';
import { instanceId, type Instance, type InstanceStatus, type Size } from '../cloud-provider.js';

export const LABEL_MANAGED = 'mesh.managed';
export const LABEL_PROVIDER = 'mesh.provider';
export const LABEL_SIZE = 'mesh.size';
export const LABEL_TAGS = 'mesh.tags';
export const LABEL_PREFIX = 'mesh.label.';
export const LABEL_SNAPSHOT_OF = 'mesh.snapshot.of';
/** `true` on a snapshot of a mesh instance: it is in the catalog a `write` caller creates from. */
export const LABEL_SNAPSHOT_CATALOG = 'mesh.snapshot.catalog';

/** Sizes are CPU and memory limits; the engine costs nothing per month. */
export const LOCAL_SIZES: Size[] = [
  {
    provider: 'local',
    slug: 'local-small',
    vcpus: 1,
    memory_mb: 256,
    disk_gb: 0,
    price_hourly: 0,
    price_monthly: 0,
    currency: 'USD',
    regions: ['local'],
  },
  {
    provider: 'local',
    slug: 'local-medium',
    vcpus: 1,
    memory_mb: 512,
    disk_gb: 0,
    price_hourly: 0,
    price_monthly: 0,
    currency: 'USD',
    regions: ['local'],
  },
  {
    provider: 'local',
    slug: 'local-large',
    vcpus: 2,
    memory_mb: 1024,
    disk_gb: 0,
    price_hourly: 0,
    price_monthly: 0,
    currency: 'USD',
    regions: ['local'],
  },
];

const STATUS: Record<string, InstanceStatus> = {
  created: 'provisioning',
  restarting: 'provisioning',
  running: 'running',
  paused: 'off',
  exited: 'off',
  removing: 'deleting',
  dead: 'error',
};

/** A container the local provider created: the rest of the engine (droplets, deployed apps) is not its to touch. */
export function isLocalInstance(labels: Record<string, string> | undefined | null): boolean {
  return labels?.[LABEL_MANAGED] === 'true' && labels?.[LABEL_PROVIDER] === 'local';
}

export function containerLabels(tags: string[], labels: Record<string, string>, size: string): Record<string, string> {
  return {
    [LABEL_MANAGED]: 'true',
    [LABEL_PROVIDER]: 'local',
    [LABEL_SIZE]: size,
    [LABEL_TAGS]: ['droplet-mesh', ...tags.filter((t) => t !== 'droplet-mesh')].join(','),
    ...Object.fromEntries(Object.entries(labels).map(([k, v]) => [LABEL_PREFIX + k, v])),
  };
}

interface ContainerView {
  id: string;
  name: string;
  state: string;
  image: string;
  created_at: string | null;
  labels: Record<string, string>;
  networks: Record<string, { IPAddress?: string; GlobalIPv6Address?: string }>;
  networkMode?: string;
}

function toInstance(c: ContainerView): Instance {
  const meshLabels = c.labels ?? {};
  const tags = (meshLabels[LABEL_TAGS] ?? '').split(',').filter(Boolean);
  const labels = Object.fromEntries(
    Object.entries(meshLabels)
      .filter(([k]) => k.startsWith(LABEL_PREFIX))
      .map(([k, v]) => [k.slice(LABEL_PREFIX.length), v]),
  );
  const host = c.networkMode === 'host' || 'host' in c.networks;
  const net = Object.values(c.networks).find((n) => n.IPAddress);
  return {
    id: instanceId('local', c.id),
    provider: 'local',
    provider_id: c.id,
    name: c.name.replace(/^\//, ''),
    status: STATUS[c.state] ?? 'unknown',
    raw_status: c.state,
    // Host networking shares the engine's loopback.
    ipv4: host ? '127.0.0.1' : net?.IPAddress || null,
    ipv6: net?.GlobalIPv6Address || null,
    private_ip: host ? null : net?.IPAddress || null,
    region: 'local',
    size: meshLabels[LABEL_SIZE] ?? null,
    image: c.image,
    tags,
    labels,
    created_at: c.created_at,
    price_monthly: 0,
    managed: isLocalInstance(meshLabels),
  };
}

export function fromContainerInfo(c: Docker.ContainerInfo): Instance {
  return toInstance({
    id: c.Id,
    name: c.Names?.[0] ?? c.Id.slice(0, 12),
    state: c.State,
    image: c.Image,
    created_at: c.Created ? new Date(c.Created * 1000).toISOString() : null,
    labels: c.Labels ?? {},
    networks: (c.NetworkSettings?.Networks ?? {}) as ContainerView['networks'],
    networkMode: c.HostConfig?.NetworkMode,
  });
}

export function fromContainerInspect(c: Docker.ContainerInspectInfo): Instance {
  return toInstance({
    id: c.Id,
    name: c.Name,
    state: c.State?.Status ?? 'unknown',
    image: c.Config?.Image ?? c.Image,
    created_at: c.Created ?? null,
    labels: c.Config?.Labels ?? {},
    networks: (c.NetworkSettings?.Networks ?? {}) as ContainerView['networks'],
    networkMode: c.HostConfig?.NetworkMode,
  });
}
