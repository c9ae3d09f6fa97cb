import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import AxeBuilder from '@axe-core/playwright';
import type { Page } from 'playwright-core';
import { createExampleDroplet } from '@droplet-mesh/example/dist/example-droplet.js';
import { startAllEmulators } from '@droplet-mesh/cloud-emulators';
import { createHealthMonitor } from '@droplet-mesh/health-monitor/dist/health-monitor.js';
import { createMultiCloudDroplet } from '@droplet-mesh/multi-cloud-manager/dist/app.js';
import { createProxyManager } from '@droplet-mesh/proxy-manager';
import { createRegistryDroplet } from '@droplet-mesh/registry/dist/app.js';
import { baseConfigShape, Bus, createDroplet } from '@droplet-mesh/udc-kit';
import { freePort, startNatsServer, waitFor, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import { createConsoleDroplet } from '../../src/app.js';

// Debian's chromium package (no browser download is possible here), driven by playwright-core.
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** axe-core's serious and critical WCAG 2.1 A/AA violations on the page as it is now. */
export async function seriousA11yViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
}

export const ADMIN_KEY = 'console-test-admin-key-0123456789';
export const SESSION_SECRET = 'console-test-session-secret-0123456789';
export const quiet = () => new Writable({ write: (_c, _e, cb) => cb() });
export const WEB_DIR = fileURLToPath(new URL('../../dist/web', import.meta.url));

export interface Closer {
  close(): Promise<void>;
}

/** A real registry droplet in this process, on a real nats-server. */
export async function startRegistry(natsUrl: string) {
  const made = await createRegistryDroplet({
    env: { PORT: '0', NATS_URL: natsUrl, REGISTRY_ADMIN_KEY: ADMIN_KEY, HEARTBEAT_INTERVAL_S: '30', LOG_LEVEL: 'info' },
    logDestination: quiet(),
  });
  const { url } = await made.droplet.start();
  return { ...made, url, close: () => made.droplet.stop() };
}

/** Environment for a droplet that registers itself with the registry and trusts its tokens. */
export const meshEnv = (natsUrl: string, registryUrl: string) => ({
  PORT: '0',
  NATS_URL: natsUrl,
  LOG_LEVEL: 'info',
  REGISTRY_URL: registryUrl,
  REGISTRY_KEY: ADMIN_KEY,
  JWKS_URL: `${registryUrl}/.well-known/jwks.json`,
});

export async function waitRegistered(registryUrl: string, id: string): Promise<void> {
  const token = await operatorToken(registryUrl);
  await waitFor(
    `'${id}' registered`,
    async () => (await fetch(`${registryUrl}/droplets/${id}`, { headers: { authorization: `Bearer ${token}` } })).status === 200,
    15_000,
    100,
  );
}

export async function operatorToken(registryUrl: string): Promise<string> {
  const res = await fetch(`${registryUrl}/auth/token?droplet_id=operator`, { method: 'POST', headers: { 'x-registry-key': ADMIN_KEY } });
  if (!res.ok) throw new Error(`operator token: HTTP ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

/** Registers a record with the admin key (a droplet that is down, an app another droplet stewards). */
export async function registerRecord(registryUrl: string, record: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${registryUrl}/droplets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-registry-key': ADMIN_KEY },
    body: JSON.stringify(record),
  });
  if (!res.ok) throw new Error(`registering ${String(record.id)}: HTTP ${res.status} ${await res.text()}`);
}

/** The example droplet (POST /echo validates its body), registered under `id`. */
export async function startExample(natsUrl: string, registryUrl: string, id = 'example') {
  const d = createExampleDroplet({ env: { ...meshEnv(natsUrl, registryUrl), DROPLET_ID: id }, name: id, logDestination: quiet() });
  const { url } = await d.start();
  await waitRegistered(registryUrl, id);
  return { droplet: d, url, close: () => d.stop() };
}

/**
 * A small real droplet with an event stream: GET /ticks?n=3&every_ms=100 sends n events
 * then ends; GET /forever keeps a stream open until the client leaves.
 */
export async function startTicker(natsUrl: string, registryUrl: string) {
  const d = createDroplet({
    name: 'ticker',
    version: '0.0.1',
    capabilities: ['ticks'],
    configSchema: z.object({ ...baseConfigShape, PORT: baseConfigShape.PORT.default(0) }),
    env: meshEnv(natsUrl, registryUrl),
    logDestination: quiet(),
    routes(api) {
      api.get(
        '/ticks',
        {
          query: z.object({ n: z.coerce.number().int().min(1).max(100).default(3), every_ms: z.coerce.number().int().min(1).default(100) }),
        },
        async ({ query, res, principal }) => {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          for (let i = 1; i <= query.n; i++) {
            res.write(`event: tick\ndata: ${JSON.stringify({ i, sub: principal?.sub })}\n\n`);
            await new Promise((r) => setTimeout(r, query.every_ms));
          }
          res.end();
        },
      );
      api.get('/forever', {}, ({ req, res }) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('event: hello\ndata: {}\n\n');
        return new Promise<void>((resolve) => req.on('close', () => resolve()));
      });
      api.post('/things', { scope: 'write', status: 201 }, ({ req }) => ({ got: req.body, idem: req.header('idempotency-key') ?? null }));
      api.get('/whoami', {}, ({ principal, req }) => ({ sub: principal?.sub, cookie: req.header('cookie') ?? null }));
      // Reads a non-JSON body (a multipart upload) as it arrives.
      api.post('/upload', { scope: 'write' }, async ({ req }) => {
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of req as AsyncIterable<Buffer>) {
          hash.update(chunk);
          bytes += chunk.length;
        }
        return { bytes, sha256: hash.digest('hex'), type: req.header('content-type') ?? null };
      });
    },
  });
  const { url } = await d.start();
  await waitRegistered(registryUrl, 'ticker');
  return { droplet: d, url, close: () => d.stop() };
}

/** A real proxy-manager (own nginx on high loopback ports) that trusts the registry and registers itself. */
export async function startProxyManager(
  natsUrl: string,
  registryUrl: string,
  extra: { httpPort?: number; env?: Record<string, string> } = {},
) {
  const dataDir = mkdtempSync(join(tmpdir(), 'console-proxy-'));
  chmodSync(dataDir, 0o755); // nginx workers (nobody) read the webroot inside it
  const env = {
    ...meshEnv(natsUrl, registryUrl),
    DATA_DIR: dataDir,
    PROXY_HTTP_PORT: String(extra.httpPort ?? (await freePort())),
    PROXY_HTTPS_PORT: String(await freePort()),
    UPSTREAM_RECHECK_INTERVAL_S: '0',
    UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
    RECONCILE_COALESCE_MS: '20',
    ...extra.env,
  };
  const bus = await Bus.connect({ url: natsUrl, name: 'proxy-manager-console-test' });
  const pm = createProxyManager({ env, bus, logDestination: quiet() });
  const { url } = await pm.start({ port: 0 });
  await waitRegistered(registryUrl, 'proxy-manager');
  return {
    pm,
    url,
    async close() {
      await pm.stop().catch(() => undefined);
      await bus.close().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** An app's /health that the test turns bad and good again. */
export async function startFlakyApp() {
  let healthy = true;
  const port = await freePort();
  const server = createServer((req, res) => {
    res.statusCode = req.url === '/health' && !healthy ? 503 : 200;
    res.end(healthy ? 'ok' : 'down');
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    setHealthy(v: boolean) {
      healthy = v;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A real health-monitor (one monitor, fast checks) watching `targets` and the registry's records. */
export async function startHealthMonitor(natsUrl: string, registryUrl: string, targets: Array<{ id: string; url: string }>) {
  const hm = createHealthMonitor({
    env: {
      ...meshEnv(natsUrl, registryUrl),
      MONITORS_PER_TARGET: '1',
      CHECK_INTERVAL_MS: '300',
      CHECK_TIMEOUT_MS: '500',
      RECHECK_DELAY_MS: '100',
      FAILS_TO_SUSPECT: '2',
      OKS_TO_RECOVER: '2',
      RECOVERY_POLICY: 'alert',
      STATIC_TARGETS: JSON.stringify(targets),
      CONTROL_CHECK_URLS: JSON.stringify([`${registryUrl}/health`]),
      DIGEST_INTERVAL_MIN: '0',
    },
    logDestination: quiet(),
  });
  await hm.start();
  await waitRegistered(registryUrl, 'health-monitor');
  return { hm, close: () => hm.stop() };
}

/** A real multi-cloud-manager over the DigitalOcean, Hetzner and Vultr emulators (no local Docker provider). */
export async function startMultiCloud(natsUrl: string, registryUrl: string, seedInstances = 2, validateContract = true) {
  const token = 'console-test-cloud-token-0123456789';
  const emus = await startAllEmulators({ token, seedInstances, actionDurationMs: 100, validateContract });
  const mcm = createMultiCloudDroplet({
    env: {
      ...meshEnv(natsUrl, registryUrl),
      DO_TOKEN: token,
      HETZNER_TOKEN: token,
      VULTR_TOKEN: token,
      DO_API_URL: emus.digitalocean.apiUrl,
      HETZNER_API_URL: emus.hetzner.apiUrl,
      VULTR_API_URL: emus.vultr.apiUrl,
      LOCAL_PROVIDER_ENABLED: 'false',
      ACTION_POLL_INTERVAL_MS: '50',
      ACTION_WAIT_TIMEOUT_S: '10',
      PROVIDER_LIST_TIMEOUT_MS: '5000',
      PROVIDER_TIMEOUT_MS: '3000',
    },
    logDestination: quiet(),
  });
  await mcm.start();
  await waitRegistered(registryUrl, 'multi-cloud-manager');
  return {
    mcm,
    async close() {
      await mcm.stop().catch(() => undefined);
      await emus.close();
    },
  };
}

export async function startConsole(natsUrl: string, registryUrl: string, extra: { env?: Record<string, string>; now?: () => number } = {}) {
  const made = createConsoleDroplet({
    env: {
      PORT: '0',
      NATS_URL: natsUrl,
      LOG_LEVEL: 'info',
      REGISTRY_URL: registryUrl,
      JWKS_URL: `${registryUrl}/.well-known/jwks.json`,
      CONSOLE_WEB_DIR: WEB_DIR,
      CONSOLE_DISCOVERY_CACHE_MS: '0',
      CONSOLE_SESSION_SECRET: SESSION_SECRET,
      ...extra.env,
    },
    registry: false,
    now: extra.now,
    logDestination: quiet(),
  });
  const { url } = await made.droplet.start();
  return { ...made, url, close: () => made.droplet.stop() };
}

/** Closes in reverse order, never throwing (a failed start must not hide the first error). */
export async function closeAll(items: Array<Closer | undefined>, nats?: NatsServerHandle): Promise<void> {
  for (const c of [...items].reverse()) await c?.close().catch(() => undefined);
  await nats?.stop({ removeStore: true }).catch(() => undefined);
}

export { startNatsServer };
