import { z } from 'zod';
import {
  createDroplet,
  DependencyUnavailable,
  NotFound,
  parseOrThrow,
  type Bus,
  type Env,
  type LiveConfig,
  type RegistryLink,
} from '@droplet-mesh/udc-kit';
import { configSchema, type Config } from './config.js';
import type { MonitorEngine } from './engine/monitor-engine.js';
import { registerIncidentRoutes } from './routes/incidents.js';
import { registerMonitorRoutes } from './routes/monitors.js';
import { registerNotificationRoutes, type NotificationRouteDeps } from './routes/notifications.js';
import { registerTargetRoutes } from './routes/targets.js';

export const DROPLET_NAME = 'health-monitor';

const incidentNote = z.object({
  target_id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/),
  event: z.string().regex(/^[a-z][a-z0-9_.-]{0,63}$/),
  detail: z
    .record(z.string(), z.unknown())
    .refine((d) => JSON.stringify(d).length <= 8000, 'must be at most 8000 characters of JSON')
    .optional(),
});
export const VERSION = '0.1.0';

export interface HealthMonitorDropletDeps {
  env: Env;
  engine: () => MonitorEngine | undefined;
  bus?: Bus;
  registry?: RegistryLink;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
  onStop?: () => Promise<void>;
  /** Settings /reload-config applies to the running engine. */
  liveConfig?: LiveConfig<Config>;
  /** Recipient lists set over the API (/notifications/recipients). */
  notifications?: NotificationRouteDeps;
}

/** The droplet: UDC endpoints from udc-kit plus the health-monitor's own routes. */
export function createHealthMonitorDroplet(deps: HealthMonitorDropletDeps) {
  const { engine, onStop, notifications, ...rest } = deps;
  const routeDeps = { engine };
  return createDroplet({
    name: DROPLET_NAME,
    version: VERSION,
    description: 'Peer health checks, quorum failure detection, leader-led recovery, notifications',
    capabilities: ['health-checks', 'incidents', 'recovery', 'notifications'],
    dependencies: [
      { name: 'registry', required: false },
      { name: 'deployer', required: false },
      { name: 'multi-cloud-manager', required: false },
    ],
    configSchema,
    // When each target was first seen: a fresh monitor fills it at once; a restore brings back the older times.
    backup: { selfMade: { 'health-monitor-targets': /.*/ } },
    ...rest,
    onStop,
    healthChecks: {
      monitor: {
        required: false,
        intervalMs: 2000,
        check: () => {
          const e = engine();
          return e?.isReady()
            ? { ok: true, detail: { monitor_id: e.monitorId, members: e.members().length, targets: e.targets().length } }
            : { ok: false, detail: 'starting' };
        },
      },
    },
    routes(api) {
      registerIncidentRoutes(api, routeDeps);
      registerTargetRoutes(api, routeDeps);
      registerMonitorRoutes(api, routeDeps);
      if (notifications) registerNotificationRoutes(api, notifications);
    },
    messageHandlers: {
      // Another droplet's step on a target's open incident (the deployer moving a lost server's replicas).
      'incident.note': {
        types: ['command'],
        scope: 'write',
        handle: async (payload, envelope, ctx) => {
          const p = parseOrThrow(incidentNote, payload, 'payload');
          const e = engine();
          if (!e?.isReady()) throw new DependencyUnavailable('the health-monitor is starting');
          const by = `droplet:${ctx.principal?.droplet_id ?? envelope.source}`;
          const incident = await e.actions.note(p.target_id, p.event, by, p.detail);
          if (!incident) throw new NotFound(`'${p.target_id}' has no open incident`);
          return { incident_id: incident.id, target_id: p.target_id, event: p.event };
        },
      },
      'health.summary': {
        types: ['query'],
        scope: 'read',
        handle: () => {
          const e = engine();
          return e?.isReady() ? e.digestSummary() : { starting: true };
        },
      },
    },
  });
}
