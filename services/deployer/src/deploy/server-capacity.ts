// Room for a lost server's replicas: each server takes at most `max_replicas` containers (its
// setting, PATCH /servers/{id}, or DEFAULT_MAX_REPLICAS). A release moves only when the other
// servers of its environment have room for all its replicas; otherwise the move is not tried
// and the incident says why, server by server.
import { environmentServers, type PlaceableServer } from '../domain/placement.js';

export const DEFAULT_MAX_REPLICAS = 50;

export interface CapacityServer extends PlaceableServer {
  max_replicas?: number;
}

export interface ReleaseLike {
  target_id: string;
  project: string;
  environment: string;
  containers: Array<{ server_id: string }>;
}

export interface ServerRoom {
  server_id: string;
  used: number;
  max: number;
}

export interface RoomVerdict {
  ok: boolean;
  needed: number;
  servers: ServerRoom[];
  /** Said when not ok, in words for the incident timeline. */
  reason?: string;
}

/** Can the other servers of `release`'s environment take all its replicas (its own containers there are replaced)? */
export function roomForMove(
  release: ReleaseLike,
  lostServerId: string,
  servers: CapacityServer[],
  releases: ReleaseLike[],
  defaultMax = DEFAULT_MAX_REPLICAS,
): RoomVerdict {
  const needed = release.containers.length;
  const assigned = environmentServers(servers, release.project, release.environment);
  // No server assigned to the environment (nor the lost one): its deploys go to the local server.
  if (assigned.length === 0) return { ok: true, needed, servers: [] };
  const others = assigned.filter((s) => s.id !== lostServerId);
  const rooms = others.map((s) => ({
    server_id: s.id,
    used: releases
      .filter((r) => r.target_id !== release.target_id)
      .reduce((n, r) => n + r.containers.filter((c) => c.server_id === s.id).length, 0),
    max: s.max_replicas ?? defaultMax,
  }));
  const env = `${release.project}/${release.environment}`;
  if (rooms.length === 0)
    return {
      ok: false,
      needed,
      servers: [],
      reason: `no capacity: no other server serves ${env} (add one: POST /servers/provision with environments ['${env}'])`,
    };
  const free = rooms.reduce((n, r) => n + Math.max(0, r.max - r.used), 0);
  if (free >= needed) return { ok: true, needed, servers: rooms };
  return {
    ok: false,
    needed,
    servers: rooms,
    reason: `no capacity: ${release.target_id} needs ${needed} replica(s), the other servers of ${env} have room for ${free} (${rooms
      .map((r) => `${r.server_id} ${r.used}/${r.max}`)
      .join(', ')}); raise max_replicas (PATCH /servers/{id}) or add a server`,
  };
}
