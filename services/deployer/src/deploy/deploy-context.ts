import type { Bus, Logger, MessageReply, RegistryLink } from '@droplet-mesh/udc-kit';
import type { DeployerConfig } from '../config.js';
import type { EnginePool } from '../engine/engine-pool.js';
import type { Stores } from '../store/stores.js';

/** Everything the deploy machinery needs, handed in by app.ts (tests pass real ones). */
export interface DeployerDeps {
  config: DeployerConfig;
  stores: Stores;
  bus: Bus;
  engines: EnginePool;
  logger: Logger;
  /** This process's identity; a deploy owned by an id nobody answers for was interrupted. */
  ownerId: string;
  send: (req: {
    target: string;
    message_type: 'command' | 'query';
    payload: Record<string, unknown>;
    timeout_ms?: number;
    retry_count?: number;
  }) => Promise<MessageReply>;
  registry: () => RegistryLink | undefined;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
}
