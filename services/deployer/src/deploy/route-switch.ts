import { DependencyUnavailable } from '@droplet-mesh/udc-kit';
import type { PlacedContainer } from '../domain/model.js';
import type { DeployerDeps } from './deploy-context.js';

export const upstreamsOf = (containers: PlacedContainer[]) =>
  containers.filter((c) => c.port).map((c) => ({ host: c.address, port: c.port! }));

/** Point a domain at upstreams through proxy-manager; anything but `success` is a failure. */
export async function routeUpsert(
  deps: DeployerDeps,
  name: string,
  domain: string,
  upstreams: Array<{ host: string; port: number }>,
  healthPath: string,
  https = false,
): Promise<unknown> {
  const reply = await deps.send({
    target: 'proxy-manager',
    message_type: 'command',
    // enable_ssl only when asked: left out, proxy-manager keeps whatever HTTPS the route has.
    payload: {
      action: 'route.upsert',
      name,
      domain,
      upstreams,
      require_healthy: true,
      health_path: healthPath,
      ...(https ? { enable_ssl: true } : {}),
    },
    timeout_ms: 20_000,
    retry_count: 1,
  });
  if (reply.result !== 'success') {
    throw new DependencyUnavailable(`proxy-manager refused the route: ${reply.error?.message ?? reply.result}`, {
      code: reply.error?.code,
    });
  }
  return reply.data;
}
