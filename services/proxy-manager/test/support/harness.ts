import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bus, type Scope } from '@droplet-mesh/udc-kit';
import { freePort, startNatsServer, startTestAuthority, type NatsServerHandle, type TestAuthority } from '@droplet-mesh/udc-kit/testing';
import { createProxyManager, type ProxyManager, type ProxyManagerDeps } from '../../src/app.js';
import { quiet } from './http.js';

export interface Harness {
  pm: ProxyManager;
  nats: NatsServerHandle;
  authority: TestAuthority;
  dataDir: string;
  httpPort: number;
  httpsPort: number;
  env: Record<string, string>;
  auth(scopes?: Scope[]): { Authorization: string };
  /** Stop the droplet (and its nginx) but keep NATS and the data dir, for restart tests. */
  stopDroplet(): Promise<void>;
  /** Build and start a fresh droplet on the same NATS, data dir and ports. */
  restartDroplet(extra?: Partial<ProxyManagerDeps>): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  deps?: Partial<ProxyManagerDeps>;
  nats?: NatsServerHandle;
  authority?: TestAuthority;
}

/** A proxy-manager on real NATS and a real nginx on 127.0.0.1 high ports, in a scratch DATA_DIR. */
export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const nats = opts.nats ?? (await startNatsServer());
  const authority = opts.authority ?? (await startTestAuthority());
  const dataDir = mkdtempSync(join(tmpdir(), 'mesh-proxy-'));
  chmodSync(dataDir, 0o755); // nginx workers (nobody) read the webroot inside it
  const httpPort = opts.env?.PROXY_HTTP_PORT ? Number(opts.env.PROXY_HTTP_PORT) : await freePort();
  const httpsPort = opts.env?.PROXY_HTTPS_PORT ? Number(opts.env.PROXY_HTTPS_PORT) : await freePort();
  const env: Record<string, string> = {
    PORT: '0',
    NATS_URL: nats.url,
    DATA_DIR: dataDir,
    PROXY_HTTP_PORT: String(httpPort),
    PROXY_HTTPS_PORT: String(httpsPort),
    LOG_LEVEL: 'info',
    UPSTREAM_RECHECK_INTERVAL_S: '0',
    UPSTREAM_HEALTH_TIMEOUT_MS: '1000',
    RECONCILE_COALESCE_MS: '50',
    // A reload's confirmation can take seconds on a loaded 2-core machine (more with the Lua module); a refused one fails at once.
    NGINX_RELOAD_TIMEOUT_MS: '20000',
    ...authority.env(),
    ...opts.env,
  };
  let bus = await Bus.connect({ url: nats.url, name: 'proxy-manager-test' });
  const build = (extra: Partial<ProxyManagerDeps> = {}) => createProxyManager({ env, bus, logDestination: quiet, ...opts.deps, ...extra });
  let pm = build();
  await pm.start({ port: 0 });
  let stopped = false;
  const h: Harness = {
    get pm() {
      return pm;
    },
    nats,
    authority,
    dataDir,
    httpPort,
    httpsPort,
    env,
    auth: (scopes = ['read', 'write', 'admin']) => ({ Authorization: `Bearer ${authority.mint({ scopes })}` }),
    async stopDroplet() {
      if (!stopped) await pm.stop();
      stopped = true;
    },
    async restartDroplet(extra) {
      await h.stopDroplet();
      await bus.close();
      bus = await Bus.connect({ url: nats.url, name: 'proxy-manager-test' });
      pm = build(extra);
      await pm.start({ port: 0 });
      stopped = false;
    },
    async close() {
      await h.stopDroplet().catch(() => undefined);
      await bus.close().catch(() => undefined);
      if (!opts.authority) await authority.close();
      if (!opts.nats) await nats.stop({ removeStore: true });
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}
