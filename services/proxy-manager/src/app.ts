import { randomUUID } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { AddressPolicy, createDroplet, parseConfig, type Droplet, type Bus, type Env, type RegistryLink } from '@droplet-mesh/udc-kit';
import {
  acmeDirectoryUrl,
  LETS_ENCRYPT_STAGING,
  proxyManagerConfigSchema,
  resolvePaths,
  type ProxyManagerConfig,
  type ProxyPaths,
} from './config.js';
import { balancedMembers, renderRouteConfig, type ListenSettings, type RenderInput } from './domain/render.js';
import { renderLuaProbeConf, renderMainConf, type LuaSettings } from './domain/main-conf.js';
import { DynamicUpstreams, luaMissing } from './nginx/lua-balancer.js';
import type { RouteRecord } from './domain/route-spec.js';
import { NginxController } from './nginx/nginx-controller.js';
import { SiteFiles } from './nginx/site-files.js';
import { Reconciler, type Rendered } from './reconciler.js';
import { KvRouteStore, type RouteStore } from './store/route-store.js';
import { httpHealthProbe, type HealthProbe } from './upstreams/health.js';
import { resolveRoute, systemLookup, type Lookup } from './upstreams/resolve.js';
import { AcmeBudget } from './acme/budget.js';
import { CertStore } from './acme/cert-store.js';
import { AcmeIssuer, type CertificateIssuer } from './acme/acme-issuer.js';
import { Certificates } from './acme/certificates.js';
import { ProxyService } from './proxy-service.js';
import { registerProxyRoutes } from './routes/proxies.js';
import { registerManagerRoutes } from './routes/manager.js';
import { routeMessageHandlers } from './messages.js';
import { registerProxyMetrics } from './metrics.js';
import { every, recheckUpstreams } from './background.js';
import { lazyKv } from './store/lazy-kv.js';
import { SharedCertStore } from './acme/shared-certs.js';
import { UploadedCerts } from './acme/uploaded-certs.js';
import { registerCertificateRoutes } from './routes/certificates.js';
import type { KeyWatch } from './store/kv-watch.js';
import { ReplicaSync } from './replica-sync.js';

export { proxyManagerConfigSchema, type ProxyManagerConfig } from './config.js';

export interface ProxyManagerDeps {
  env: Env;
  /** A connected bus: the routes bucket is needed before the API serves. The droplet closes it on stop. */
  bus: Bus;
  registry?: RegistryLink;
  exit?: (code: number) => void;
  logDestination?: NodeJS.WritableStream;
  /** Replaceable ports; real ones by default. */
  store?: RouteStore;
  lookup?: Lookup;
  probe?: HealthProbe;
  issuer?: CertificateIssuer;
  now?: () => number;
  /** Test-only: alter a rendered file (e.g. to make one route fail `nginx -t`). */
  transformRender?: (name: string, text: string) => string;
}

export type ProxyManager = ReturnType<typeof createProxyManager>;

async function prepareDirectories(p: ProxyPaths): Promise<void> {
  for (const d of [
    p.prefix,
    resolve(p.prefix, 'conf'),
    resolve(p.prefix, 'logs'),
    resolve(p.prefix, 'temp'),
    p.sitesAvailable,
    p.sitesEnabled,
    resolve(p.webroot, '.well-known', 'acme-challenge'),
  ]) {
    await mkdir(d, { recursive: true, mode: 0o755 });
  }
  // nginx workers run as nobody: the webroot path must be traversable and readable.
  for (const d of [p.prefix, p.webroot, resolve(p.webroot, '.well-known'), resolve(p.webroot, '.well-known', 'acme-challenge')])
    await chmod(d, 0o755);
  for (const d of [p.certDir, p.acmeDir]) {
    await mkdir(d, { recursive: true, mode: 0o700 });
    await chmod(d, 0o700);
  }
}

/** Builds the proxy-manager droplet and everything it drives; `start()` brings nginx up first. */
export function createProxyManager(deps: ProxyManagerDeps) {
  const config: ProxyManagerConfig = parseConfig(proxyManagerConfigSchema, deps.env);
  const paths = resolvePaths(config, resolve);
  const listen: ListenSettings = {
    address: config.PROXY_LISTEN_ADDRESS,
    httpPort: config.PROXY_HTTP_PORT,
    httpsPort: config.PROXY_HTTPS_PORT,
    publicHttpsPort: config.PROXY_PUBLIC_HTTPS_PORT ?? config.PROXY_HTTPS_PORT,
  };
  const holder: { service?: ProxyService } = {};
  const serviceRef = {
    get service(): ProxyService {
      if (!holder.service) throw new Error('proxy service not built yet');
      return holder.service;
    },
  };

  const droplet: Droplet<ProxyManagerConfig> = createDroplet({
    name: 'proxy-manager',
    version: '0.1.0',
    description: 'NGINX routes and ACME certificates through an API, with validated reloads and rollback',
    capabilities: ['proxy.routes', 'proxy.ssl', 'proxy.sync-from-registry'],
    dependencies: [{ name: 'registry', required: false }],
    configSchema: proxyManagerConfigSchema,
    env: deps.env,
    bus: deps.bus,
    registry: deps.registry,
    exit: deps.exit,
    logDestination: deps.logDestination,
    healthChecks: {
      nginx: {
        required: true,
        intervalMs: 5000,
        check: async (): Promise<{ ok: boolean; detail?: unknown }> => {
          if (!(await nginx.binaryPresent())) return { ok: false, detail: `nginx binary not found at ${config.NGINX_BIN}` };
          if (config.NGINX_MANAGE && !nginx.isRunning()) return { ok: false, detail: 'nginx master is not running' };
          return { ok: true, detail: { last_reload: nginx.lastReload ?? null } };
        },
      },
    },
    routes(api, ctx) {
      registerProxyRoutes(api, serviceRef);
      registerCertificateRoutes(api, serviceRef);
      registerManagerRoutes(api, {
        get service() {
          return serviceRef.service;
        },
        ctx,
      });
    },
    messageHandlers: routeMessageHandlers(serviceRef),
    onStop: async () => {
      for (const stopLoop of loops.splice(0)) stopLoop();
      uploadWatch?.stop();
      await replicaSync.stop();
      await reconciler.idle();
      reconciler.stop();
      await nginx.stop();
    },
  });
  const { ctx } = droplet;
  const logger = ctx.logger;

  const nginx: NginxController = new NginxController({
    bin: config.NGINX_BIN,
    prefix: paths.prefix,
    confFile: paths.confFile,
    errorLog: paths.errorLog,
    pidFile: paths.pidFile,
    manage: config.NGINX_MANAGE,
    reloadTimeoutMs: config.NGINX_RELOAD_TIMEOUT_MS,
    logger,
  });
  const lookup = deps.lookup ?? systemLookup(config.DNS_TIMEOUT_MS);
  // Upstreams never reach link-local/metadata addresses or the mesh's own loopback ports
  // (nor this proxy's own), unless UPSTREAM_ALLOW names them.
  const policy = new AddressPolicy({
    allow: config.UPSTREAM_ALLOW,
    extraLoopbackPorts: [config.PORT, config.PROXY_HTTP_PORT, config.PROXY_HTTPS_PORT].filter((p) => p > 0),
  });
  const probe = deps.probe ?? httpHealthProbe(config.UPSTREAM_HEALTH_TIMEOUT_MS, policy);
  const now = deps.now ?? Date.now;
  const certStore = new CertStore(paths.certDir);
  /** Who this replica is, in logs, events and the certificate lease. */
  const replicaId = `${config.DROPLET_ID ?? 'proxy-manager'}@${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** Set at start when the Lua balancer loads here: upstream members then switch without reloads. */
  let dynamic: DynamicUpstreams | undefined;
  const luaSettings: LuaSettings = {
    modulesDir: config.NGINX_MODULES_DIR,
    luaDir: paths.luaDir,
    stateDir: paths.luaStateDir,
    socket: paths.controlSocket,
  };
  /** Whether this nginx can run the Lua balancer: the packages' files, then `nginx -t` on a probe config. */
  const chooseUpstreamMode = async (): Promise<void> => {
    if (config.NGINX_LUA === 'off') {
      logger.info({ action: 'nginx.lua', result: 'off' }, 'NGINX_LUA=off: every upstream change reloads nginx');
      return;
    }
    const missing = luaMissing(config.NGINX_MODULES_DIR);
    let reason = missing;
    if (!missing) {
      const candidate = new DynamicUpstreams({ luaDir: paths.luaDir, stateDir: paths.luaStateDir, socket: paths.controlSocket });
      await candidate.prepare();
      const probeFile = resolve(paths.prefix, 'conf', 'lua-probe.conf');
      await writeFile(probeFile, renderLuaProbeConf({ pidFile: paths.pidFile, errorLog: paths.errorLog, lua: luaSettings }));
      const probe = await nginx.test(probeFile);
      if (probe.ok) {
        dynamic = candidate;
        reconciler.useMemberSwitch(candidate);
        logger.info({ action: 'nginx.lua', result: 'dynamic' }, 'upstream members switch through the Lua balancer, without reloads');
        return;
      }
      reason = `nginx -t refused the Lua balancer: ${probe.output}`;
    }
    logger.warn(
      { action: 'nginx.lua', result: 'unavailable', reason },
      'every upstream change reloads nginx (install libnginx-mod-http-lua and lua-resty-core for reload-free changes)',
    );
  };
  const certKv = lazyKv(() => deps.bus.kv(config.CERT_BUCKET, { history: 1 }));
  const sharedCerts = new SharedCertStore(certKv, { encryptionKey: config.CERT_ENCRYPTION_KEY, replicaId, logger });
  const uploads = new UploadedCerts(certKv, sharedCerts, resolve(paths.certDir, '_uploaded'), logger, deps.now);
  let uploadWatch: KeyWatch | undefined;
  const store = deps.store ?? new KvRouteStore(lazyKv(() => deps.bus.kv(config.ROUTES_BUCKET, { history: 10 })));

  const render = async (record: RouteRecord): Promise<Rendered> => {
    const resolution = await resolveRoute(record, lookup, policy);
    let tls: { certificate: string; key: string } | undefined;
    // An operator's uploaded certificate covering the domain wins over ACME.
    const uploaded = record.enable_ssl ? uploads.findFor(record.domain) : undefined;
    if (uploaded) tls = uploaded.paths;
    else if (record.enable_ssl) {
      let info = await certStore.read(record.domain);
      // Another replica may have obtained it: take it from the shared store, never from the CA here.
      if (!info || Date.parse(info.not_after) <= now()) info = (await certificates.installShared(record.domain)) ?? info;
      if (info && Date.parse(info.not_after) > now()) tls = certStore.paths(record.domain);
    }
    const input: RenderInput = {
      route: record,
      servers: resolution.servers,
      pathServers: resolution.pathServers,
      listen,
      webroot: paths.webroot,
      accessLog: paths.accessLog,
      tls,
      dynamic: !!dynamic,
    };
    let text = renderRouteConfig(input);
    if (deps.transformRender) text = deps.transformRender(record.name, text);
    return {
      text,
      servers: resolution.all,
      unresolved: resolution.unresolved,
      https: !!tls,
      redirects: !!record.redirect,
      members: balancedMembers(input),
    };
  };

  const reconciler: Reconciler = new Reconciler({
    sites: new SiteFiles(paths.sitesAvailable, paths.sitesEnabled),
    nginx,
    store,
    render,
    logger,
    coalesceMs: config.RECONCILE_COALESCE_MS,
  });
  const certificates = new Certificates({
    store: certStore,
    budget: new AcmeBudget(
      lazyKv(() => deps.bus.kv(config.ACME_BUDGET_BUCKET, { history: 1 })),
      'ledger',
      now,
    ),
    issuer:
      deps.issuer ??
      new AcmeIssuer({
        directoryUrl: acmeDirectoryUrl(config),
        acmeDir: paths.acmeDir,
        webroot: paths.webroot,
        caBundle: config.ACME_CA_BUNDLE,
        logger,
      }),
    renewBeforeDays: config.RENEW_BEFORE_DAYS,
    defaultEmail: config.ACME_EMAIL,
    logger,
    emit: (t, d, l) => ctx.emit(t, d, l),
    now,
    shared: sharedCerts,
  });
  const service = new ProxyService({
    reconciler,
    nginx,
    probe,
    policy,
    lookup,
    certificates,
    uploads,
    emit: (t, d, l) => ctx.emit(t, d, l),
    recordProof: (a, d) => ctx.recordProof(a, d),
    logger,
    configDirs: [paths.sitesAvailable, paths.sitesEnabled],
    renewBeforeDays: config.RENEW_BEFORE_DAYS,
    now,
  });
  holder.service = service;
  const replicaSync = new ReplicaSync({
    reconciler,
    watchRoutes: (onChange) => {
      if (!store.watch) throw new Error('the route store cannot be watched');
      return store.watch(onChange);
    },
    storedNames: async () => (await store.list()).map((s) => s.record.name),
    watchCertificates: (onChange) => sharedCerts.watch(onChange),
    adoptCertificate: (domain) => service.adoptSharedCertificate(domain),
    logger,
    emit: (t, d, l) => ctx.emit(t, d, l),
    replicaId,
    quietMs: config.REPLICA_SYNC_QUIET_MS,
  });
  registerProxyMetrics(ctx.metrics, { certificates, nginx, reconciler });
  const loops: Array<() => void> = [];

  return {
    droplet,
    service,
    reconciler,
    nginx,
    certificates,
    uploads,
    replicaSync,
    replicaId,
    /** The Lua balancer's members when upstreams switch without reloads (set by start()). */
    get dynamic(): DynamicUpstreams | undefined {
      return dynamic;
    },
    config,
    paths,
    /** Directories, nginx.conf, files re-rendered from the store, nginx up, then the API; then follow other replicas. */
    async start(opts: { port?: number; host?: string } = {}) {
      await prepareDirectories(paths);
      await chooseUpstreamMode();
      const mainConf = {
        prefix: paths.prefix,
        pidFile: paths.pidFile,
        errorLog: paths.errorLog,
        sitesEnabled: paths.sitesEnabled,
        webroot: paths.webroot,
        listen,
        foreground: config.NGINX_MANAGE,
        lua: dynamic ? luaSettings : undefined,
      };
      await writeFile(paths.confFile, renderMainConf(mainConf));
      if (dynamic) {
        // Structural changes are tested on the Lua-free copy (same route files): see main-conf.ts testOnly.
        // The master still parses the real config at start and reload, and a reload it refuses rolls back.
        const testConf = resolve(paths.prefix, 'conf', 'nginx-test.conf');
        await writeFile(testConf, renderMainConf({ ...mainConf, testOnly: true }));
        nginx.testConfFile = testConf;
      } else nginx.testConfFile = undefined;
      logger.info(
        { action: 'acme.directory', directory_url: acmeDirectoryUrl(config), staging: acmeDirectoryUrl(config) === LETS_ENCRYPT_STAGING },
        'ACME directory',
      );
      if (!sharedCerts.encrypted)
        logger.warn(
          { action: 'cert.share' },
          'CERT_ENCRYPTION_KEY is not set: issued private keys are shared with the other replicas unencrypted in the NATS bucket',
        );
      // Opened before the listing, so a change written in between is not missed.
      if (store.watch) await replicaSync.open();
      // Uploaded certificates before the routes are rendered, so covered routes start on HTTPS.
      uploadWatch = await uploads.watch((c) => {
        const id = c.key.slice('upload.'.length);
        void service
          .adoptUploadedCertificate(id)
          .catch((err) =>
            logger.warn(
              { action: 'cert.upload', id, result: 'failed', reason: (err as Error).message },
              'cannot follow an uploaded certificate',
            ),
          );
      });
      await uploads.load();
      const sync = await reconciler.resync();
      logger.info({ action: 'resync', result: sync.failed.length ? 'partial' : 'success', ...sync }, 'routes re-rendered from the store');
      if (config.NGINX_MANAGE) await nginx.start();
      else if (!(await nginx.reload()).ok) logger.warn('nginx is not running or refused the configuration; routes are on disk');
      const started = await droplet.start(opts);
      replicaSync.release();
      const sslDomains = [...new Set([...reconciler.routes.values()].filter((s) => s.record.enable_ssl).map((s) => s.record.domain))];
      await certificates
        .shareLocal(sslDomains)
        .then(
          (offered) =>
            offered.length > 0 &&
            logger.info({ action: 'cert.share', result: 'success', domains: offered }, 'local certificates offered to the other replicas'),
        )
        .catch((err) =>
          logger.warn(
            { action: 'cert.share', result: 'failed', reason: (err as Error).message },
            'could not offer local certificates to the other replicas',
          ),
        );
      if (config.UPSTREAM_RECHECK_INTERVAL_S > 0)
        loops.push(
          every(
            config.UPSTREAM_RECHECK_INTERVAL_S * 1000,
            () => recheckUpstreams({ reconciler, probe, lookup, policy }),
            logger,
            'upstream recheck',
          ),
        );
      loops.push(every(config.RENEW_CHECK_INTERVAL_S * 1000, () => service.renewCertificates(), logger, 'certificate renewal'));
      return started;
    },
    stop: () => droplet.stop(),
  };
}
