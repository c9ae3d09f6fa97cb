import { DependencyUnavailable } from '@droplet-mesh/udc-kit';
import type { MonitorEngine } from '../engine/monitor-engine.js';

export interface RouteDeps {
  engine: () => MonitorEngine | undefined;
}

/** Routes answer 503 until the engine has its KV buckets and membership. */
export function readyEngine(deps: RouteDeps): MonitorEngine {
  const e = deps.engine();
  if (!e?.isReady()) throw new DependencyUnavailable('health monitor is starting (NATS KV not ready yet)');
  return e;
}
