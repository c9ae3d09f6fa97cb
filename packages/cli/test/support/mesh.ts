import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createProxyManager } from '@droplet-mesh/proxy-manager';
import { createRegistryDroplet } from '@droplet-mesh/registry/dist/app.js';
import { Bus } from '@droplet-mesh/udc-kit';
import { freePort } from '@droplet-mesh/udc-kit/testing';
import { quiet } from './cli.js';

export const ADMIN_KEY = 'meshctl-test-admin-key-0123456789';

/** A real registry droplet in this process, on a real nats-server. */
export async function startRegistry(natsUrl: string, extraEnv: Record<string, string> = {}) {
  const made = await createRegistryDroplet({
    env: { PORT: '0', NATS_URL: natsUrl, REGISTRY_ADMIN_KEY: ADMIN_KEY, HEARTBEAT_INTERVAL_S: '30', LOG_LEVEL: 'info', ...extraEnv },
    logDestination: quiet(),
  });
  const { url } = await made.droplet.start();
  return { ...made, url };
}

/** Registers a record with the admin key, as a droplet's registry client would. */
export async function registerRecord(registryUrl: string, record: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${registryUrl}/droplets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-registry-key': ADMIN_KEY },
    body: JSON.stringify(record),
  });
  if (!res.ok) throw new Error(`registering ${String(record.id)}: HTTP ${res.status} ${await res.text()}`);
}

/** A real proxy-manager (with its own nginx on high loopback ports) that trusts the registry's tokens and registers itself. */
export async function startProxyManager(natsUrl: string, registryUrl: string) {
  const dataDir = mkdtempSync(join(tmpdir(), 'meshctl-proxy-'));
  chmodSync(dataDir, 0o755); // nginx workers (nobody) read the webroot inside it
  const httpPort = await freePort();
  const env = {
    PORT: '0',
    NATS_URL: natsUrl,
    DATA_DIR: dataDir,
    PROXY_HTTP_PORT: String(httpPort),
    PROXY_HTTPS_PORT: String(await freePort()),
    LOG_LEVEL: 'info',
    UPSTREAM_RECHECK_INTERVAL_S: '0',
    UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
    RECONCILE_COALESCE_MS: '20',
    REGISTRY_URL: registryUrl,
    REGISTRY_KEY: ADMIN_KEY,
    JWKS_URL: `${registryUrl}/.well-known/jwks.json`,
  };
  const bus = await Bus.connect({ url: natsUrl, name: 'proxy-manager-cli-test' });
  // The droplet owns the bus: its stop() closes it.
  const pm = createProxyManager({ env, bus, logDestination: quiet() });
  const { url } = await pm.start({ port: 0 });
  return {
    pm,
    url,
    httpPort,
    async close() {
      await pm.stop().catch(() => undefined);
      await bus.close().catch(() => undefined); // already closed by a droplet that owns it
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
