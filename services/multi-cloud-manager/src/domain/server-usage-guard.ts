// Deleting an instance that is a deployer server still running services would take those
// services down with it: the deployer is asked first (UDC query `servers.usage`), and the
// delete is refused unless `force`. An instance made as a mesh server (tag or label
// 'mesh-server') is refused too when the deployer cannot answer (fail closed); any other
// instance is only refused when the deployer says a server runs services on it.
import { Conflict, type DropletContext } from '@droplet-mesh/udc-kit';
import type { Instance } from '../providers/cloud-provider.js';

/** What the deployer says about an instance: the server on it and the services with a replica there. */
export interface ServerUsage {
  server_id?: string;
  services: string[];
}

/** undefined: the deployer did not answer. */
export type AskUsage = (instance: Instance) => Promise<ServerUsage | undefined>;

export const isMeshServer = (i: Pick<Instance, 'tags' | 'labels'>) => i.tags.includes('mesh-server') || 'mesh-server' in (i.labels ?? {});

export async function assertNotServing(instance: Instance, force: boolean, ask: AskUsage): Promise<void> {
  if (force) return;
  const usage = await ask(instance).catch(() => undefined);
  if (!usage) {
    if (!isMeshServer(instance)) return;
    throw new Conflict(
      `${instance.id} is a mesh server and the deployer could not say whether it still runs services: remove the server on the deployer first (DELETE /servers/{id} drains it), or give force=true`,
      { instance_id: instance.id },
    );
  }
  if (usage.services.length > 0)
    throw new Conflict(
      `${instance.id} is the deployer's server '${usage.server_id ?? '?'}' and still runs ${usage.services.join(', ')}: remove the server on the deployer first (DELETE /servers/${usage.server_id ?? '{id}'} drains it), or give force=true`,
      { instance_id: instance.id, server_id: usage.server_id, services: usage.services },
    );
}

/** Ask the deployer over UDC (5 s); undefined when it does not answer or answers an error. */
export function askDeployer(send: DropletContext['send']): AskUsage {
  return async (instance) => {
    const reply = await send({
      target: 'deployer',
      message_type: 'query',
      payload: {
        action: 'servers.usage',
        instance_id: instance.id,
        ...(typeof instance.labels?.['mesh-server'] === 'string' ? { server_id: instance.labels['mesh-server'] } : {}),
      },
      timeout_ms: 5000,
      retry_count: 0,
    });
    if (reply.result !== 'success') return undefined;
    const d = reply.data as { server_id?: unknown; services?: unknown } | undefined;
    if (!Array.isArray(d?.services)) return undefined;
    return {
      ...(typeof d.server_id === 'string' ? { server_id: d.server_id } : {}),
      services: d.services.filter((s): s is string => typeof s === 'string'),
    };
  };
}
