import { createDroplet, type Bus, type Env, type LiveConfig, type RegistryLink } from '@droplet-mesh/udc-kit';
import { configSchema, type Config } from './config.js';
import type { MonitorEngine } from './engine/monitor-engine.js';
import { registerIncidentRoutes } from './routes/incidents.js';
import { registerMonitorRoutes } from './routes/monitors.js';
import { registerNotificationRoutes, type NotificationRouteDeps } from './routes/notifications.js';
import { registerTargetRoutes } from './routes/targets.js';

export const DROPLET_NAME = 'health-monitor';
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
