import type { ServerReplacement } from '../deploy/server-replacement.js';
import type { DropletContext } from '@droplet-mesh/udc-kit';
import type { DeployerConfig } from '../config.js';
import type { Deployer } from '../deploy/deployer.js';
import type { EnginePool } from '../engine/engine-pool.js';
import type { Stores } from '../store/stores.js';

/** Built in app.ts before start(); routes read them lazily because NATS connects in start(). */
export interface RouteDeps {
  ctx: DropletContext<DeployerConfig>;
  stores: () => Stores;
  deployer: () => Deployer;
  /** The Docker engines, one per server (undeploy removes containers directly). */
  engines: () => EnginePool;
  /** Moves a server's replicas elsewhere (drain, a lost server). */
  replacement?: () => ServerReplacement;
}

export const now = () => new Date().toISOString();
