import { z } from 'zod';
import { NotFound, paginate, paginationQuery, type Api } from '@droplet-mesh/udc-kit';
import { uptimePercent } from '../domain/uptime.js';
import type { Target } from '../domain/types.js';
import type { MonitorEngine } from '../engine/monitor-engine.js';
import { readyEngine, type RouteDeps } from './engine-access.js';

const DAY = 24 * 3600_000;

function uptime(engine: MonitorEngine, id: string, now: number) {
  const firstSeen = engine.firstSeenAt(id);
  if (firstSeen === undefined) return { '24h': null, '7d': null };
  const down = engine.incidents
    .forTarget(id)
    .map((i) => ({ from: Date.parse(i.opened_at), to: i.resolved_at ? Date.parse(i.resolved_at) : undefined }));
  return { '24h': uptimePercent(down, firstSeen, now, DAY), '7d': uptimePercent(down, firstSeen, now, 7 * DAY) };
}

function targetView(engine: MonitorEngine, t: Target, now: number) {
  const last = engine.board.lastCheck(t.id);
  const open = engine.incidents.openFor(t.id);
  return {
    id: t.id,
    kind: t.kind,
    url: t.url,
    health_path: t.health_path,
    source: t.source,
    status: engine.targetStatus(t.id),
    open_incident: open && open.status !== 'resolved' ? open.id : null,
    monitors: engine.assignment(t.id),
    last_check: last
      ? {
          at: last.at,
          ok: last.ok,
          monitor_id: last.monitor_id,
          latency_ms: last.latency_ms,
          status_code: last.status_code ?? null,
          error: last.error ?? null,
        }
      : null,
    uptime_percent: uptime(engine, t.id, now),
    recovery_policy: t.recovery,
  };
}

const idParams = z.object({ id: z.string().min(1).max(256) });

export function registerTargetRoutes(api: Api, deps: RouteDeps): void {
  api.get(
    '/targets',
    {
      summary: 'Every target with its status, last check and uptime over 24 h and 7 d',
      query: paginationQuery.extend({ status: z.enum(['up', 'down', 'unknown']).optional() }),
      tags: ['targets'],
    },
    ({ query }) => {
      const engine = readyEngine(deps);
      const now = Date.now();
      const items = engine
        .targets()
        .map((t) => targetView(engine, t, now))
        .filter((v) => !query.status || v.status === query.status);
      return paginate(items, query);
    },
  );

  api.get(
    '/targets/:id/history',
    {
      summary: 'Down/up transitions, incidents and recent checks of one target',
      params: idParams,
      query: z.object({ checks: z.coerce.number().int().min(0).max(500).default(30) }),
      tags: ['targets'],
    },
    ({ params, query }) => {
      const engine = readyEngine(deps);
      const t = engine.target(params.id);
      const incidents = engine.incidents.forTarget(params.id);
      if (!t && incidents.length === 0) throw new NotFound(`no target '${params.id}'`);
      const transitions = incidents
        .flatMap((i) => [
          { at: i.opened_at, status: 'down', incident_id: i.id },
          ...(i.resolved_at ? [{ at: i.resolved_at, status: 'up', incident_id: i.id }] : []),
        ])
        .sort((a, b) => (a.at < b.at ? -1 : 1));
      const firstSeen = engine.firstSeenAt(params.id);
      return {
        target_id: params.id,
        known: !!t,
        status: engine.targetStatus(params.id),
        first_seen_at: firstSeen !== undefined ? new Date(firstSeen).toISOString() : null,
        uptime_percent: uptime(engine, params.id, Date.now()),
        transitions,
        incidents: incidents.map((i) => ({
          id: i.id,
          status: i.status,
          opened_at: i.opened_at,
          resolved_at: i.resolved_at ?? null,
          reason: i.reason,
        })),
        recent_checks: engine.board.recentFor(params.id, query.checks),
      };
    },
  );
}
