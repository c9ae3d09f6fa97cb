// `npm start`: install what is needed, start NATS (JetStream under DATA_DIR) and every
// droplet that exists under a supervisor that restarts what dies, print their URLs and an
// operator token, stop cleanly on Ctrl-C or SIGTERM.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { ensureDockerEngine, ensureWorld, log, ROOT, runScript } from './ensure-world.mjs';
import { DROPLET_NODE_ARGS } from './droplet-node-args.mjs';
import { claimDataDir, portHolder, Supervisor } from './supervisor.mjs';

// MESH_SKIP_SETUP=1: the world is installed and built already (the chaos tests start many meshes).
if (process.env.MESH_SKIP_SETUP !== '1') await runScript(async () => ensureWorld('start'));

const DATA_DIR = resolve(ROOT, process.env.DATA_DIR ?? '.mesh');
const NATS_PORT = Number(process.env.NATS_PORT ?? 4222);
mkdirSync(join(DATA_DIR, 'logs'), { recursive: true, mode: 0o700 });

/** A secret from the environment, or one generated once and kept under DATA_DIR (mode 0600). */
function persistentSecret(name, make = () => randomBytes(32).toString('base64')) {
  if (process.env[name]) return { value: process.env[name] };
  const file = join(DATA_DIR, `${name.toLowerCase()}.secret`);
  if (existsSync(file)) return { value: readFileSync(file, 'utf8').trim(), file };
  const value = make();
  writeFileSync(file, value, { mode: 0o600 });
  return { value, file, generated: true };
}
// Kept, not made anew at each start: the registry's signing key is sealed with it.
const adminKey = persistentSecret('REGISTRY_ADMIN_KEY', () => randomBytes(24).toString('base64url'));
const ADMIN_KEY = adminKey.value;

/**
 * NATS authorization, always on: one user per droplet with its own permissions (the table in
 * udc-kit), passwords generated at first start into DATA_DIR/nats/credentials.json (0600).
 * Rotate by deleting that file and restarting: every password is then new.
 */
async function natsAuthorization() {
  const { meshNatsUsers, renderNatsAuthorization } = await import('@droplet-mesh/udc-kit');
  const dir = join(DATA_DIR, 'nats');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const credentialsFile = join(dir, 'credentials.json');
  const passwords = existsSync(credentialsFile) ? JSON.parse(readFileSync(credentialsFile, 'utf8')) : {};
  const users = meshNatsUsers((name) => (passwords[name] ??= randomBytes(24).toString('hex')));
  passwords['cluster-route'] ??= randomBytes(24).toString('hex');
  writeFileSync(credentialsFile, `${JSON.stringify(passwords, null, 2)}\n`, { mode: 0o600 });
  const configFile = join(dir, 'auth.conf');
  writeFileSync(configFile, renderNatsAuthorization(users), { mode: 0o600 });
  return { configFile, credentialsFile, passwords };
}

/**
 * NATS_CLUSTER=3: a JetStream cluster of three nats-servers on this machine (client ports
 * NATS_PORT, +1, +2; route ports NATS_CLUSTER_PORT, +1, +2), each with the same authorization.
 */
const NATS_CLUSTER = Number(process.env.NATS_CLUSTER ?? 1);
async function natsCluster(auth) {
  const { renderClusterNodeConfig, renderNatsAuthorization, meshNatsUsers } = await import('@droplet-mesh/udc-kit');
  const clusterPort = Number(process.env.NATS_CLUSTER_PORT ?? 6222);
  const nodes = Array.from({ length: NATS_CLUSTER }, (_, i) => ({
    name: `nats-n${i + 1}`,
    port: NATS_PORT + i,
    clusterPort: clusterPort + i,
  }));
  const authorization = renderNatsAuthorization(meshNatsUsers((name) => auth.passwords[name]));
  return nodes.map((node) => {
    const file = join(DATA_DIR, 'nats', `${node.name}.conf`);
    writeFileSync(file, renderClusterNodeConfig(node, nodes, auth.passwords['cluster-route'], authorization), { mode: 0o600 });
    return { ...node, args: ['-c', file] };
  });
}

/** Droplets in start order; a droplet whose build output is missing is skipped. */
const DROPLETS = [
  { name: 'registry', port: 8000 },
  { name: 'multi-cloud-manager', port: 8010 },
  { name: 'proxy-manager', port: 8100 },
  { name: 'deployer', port: 8200 },
  { name: 'health-monitor', port: 8300 },
  { name: 'console', port: 8400 },
  { name: 'orchestrator', port: 8500 },
];

/**
 * MESH_REPLICAS=N: every droplet runs N times. Replica i (2..N) listens on the droplet's port
 * + i-1 (registry 8001, deployer 8201, ...), registers as `<droplet>-<i>` under the same name
 * (so the registry lists them all, and NATS messages to `udc.<droplet>.message` are shared by
 * its queue group), logs to logs/<droplet>-<i>.log and is restarted on its own. proxy-manager's
 * replicas each run their own nginx (PROXY_HTTP_PORT/PROXY_HTTPS_PORT + i-1, DATA_DIR/<droplet>-<i>).
 */
const MESH_REPLICAS = Number(process.env.MESH_REPLICAS ?? 1);
if (!Number.isInteger(MESH_REPLICAS) || MESH_REPLICAS < 1 || MESH_REPLICAS > 5) {
  log(`error: MESH_REPLICAS must be a whole number from 1 to 5 (got '${process.env.MESH_REPLICAS}')`);
  process.exit(1);
}
const replicaNumbers = Array.from({ length: MESH_REPLICAS }, (_, i) => i + 1);

let stopping = false;

function portOpen(port, host = '127.0.0.1') {
  return new Promise((r) => {
    const s = connect({ port, host });
    s.once('connect', () => {
      s.destroy();
      r(true);
    });
    s.once('error', () => r(false));
  });
}

async function waitUntil(what, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (stopping) throw new Error('stopping');
    try {
      if (await probe()) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s`);
}

const supervisor = new Supervisor({
  dataDir: DATA_DIR,
  log,
  maxRestarts: Number(process.env.MESH_MAX_RESTARTS ?? 5),
  windowMs: Number(process.env.MESH_RESTART_WINDOW_S ?? 60) * 1000,
  onGiveUp: (_name, reason) => {
    log(reason);
    void stopAll(1);
  },
});

async function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  await supervisor.stopAll();
  process.exit(code);
}
process.on('exit', () => supervisor.killAll());
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));
process.on('SIGHUP', () => void stopAll(0));

/** What replica `i` (> 1) of a droplet gets on top of the common environment: its own id, and for proxy-manager its own nginx. */
function replicaEnv(d, i, proxyPorts) {
  if (i === 1) return {};
  const env = { DROPLET_ID: `${d.name}-${i}` };
  if (d.name === 'proxy-manager') {
    for (const p of proxyPorts) env[p.name] = String(p.port + i - 1);
    env.DATA_DIR = join(DATA_DIR, `${d.name}-${i}`);
  }
  return env;
}

/**
 * The mesh image registry: Debian's docker-registry (not its system service) with TLS from a
 * CA of its own and htpasswd credentials, files under DATA_DIR/image-registry (keys and
 * credentials 0600). The deployer pushes each deploy image to it once and every server pulls
 * the digest. MESH_REGISTRY set: that registry is used instead; MESH_REGISTRY=off: none (export/import).
 * Port 5050 by default: Debian's own docker-registry service, where it runs, holds 5000.
 */
async function meshImageRegistry() {
  if (process.env.MESH_REGISTRY) return undefined;
  const { prepareImageRegistry, REGISTRY_BIN } = await import('@droplet-mesh/image-registry');
  const installed = REGISTRY_BIN.startsWith('/')
    ? existsSync(REGISTRY_BIN)
    : ['/usr/bin', '/usr/local/bin'].some((d) => existsSync(join(d, REGISTRY_BIN)));
  if (!installed) {
    log('docker-registry is not installed: deploy images go between servers by export/import (fix: apt-get install docker-registry)');
    return undefined;
  }
  const port = Number(process.env.MESH_REGISTRY_PORT ?? 5050);
  const address = process.env.MESH_REGISTRY_ADDRESS ?? '127.0.0.1';
  if (await portOpen(port, address))
    throw new Error(
      `port ${port} (the mesh image registry) is taken${portHolder(port)}: stop it, set MESH_REGISTRY_PORT, or MESH_REGISTRY=off`,
    );
  const reg = prepareImageRegistry({
    dir: join(DATA_DIR, 'image-registry'),
    address,
    port,
    hosts: address === '127.0.0.1' ? ['localhost'] : [],
  });
  supervisor.add('image-registry', { cmd: reg.cmd, args: reg.args });
  await waitUntil('image-registry', () => portOpen(port, address), 15_000);
  return reg;
}

const dropletPort = (d) => Number(process.env[`${d.name.toUpperCase().replace(/-/g, '_')}_PORT`] ?? d.port);

try {
  const claimProblem = claimDataDir(DATA_DIR, log);
  if (claimProblem) {
    log(`error: ${claimProblem}`);
    process.exit(1);
  }
  const proxyPorts = [
    ['PROXY_HTTP_PORT', 8080],
    ['PROXY_HTTPS_PORT', 8443],
  ].map(([name, port]) => ({ name, port: Number(process.env[name] ?? port) }));
  for (const p of proxyPorts)
    if (await portOpen(p.port))
      throw new Error(`port ${p.port} (proxy-manager's nginx) is taken${portHolder(p.port)}: stop it, or set ${p.name}`);
  for (const d of DROPLETS)
    for (const i of replicaNumbers) {
      const port = dropletPort(d) + i - 1;
      if (await portOpen(port))
        throw new Error(
          `port ${port} (${i > 1 ? `${d.name}-${i}` : d.name}) is taken${portHolder(port)}: stop it, or set ${d.name.toUpperCase().replace(/-/g, '_')}_PORT`,
        );
    }
  for (const p of proxyPorts)
    for (const i of replicaNumbers.slice(1))
      if (await portOpen(p.port + i - 1))
        throw new Error(`port ${p.port + i - 1} (nginx of proxy-manager-${i}) is taken${portHolder(p.port + i - 1)}`);
  const dockerProblem = await ensureDockerEngine(join(DATA_DIR, 'logs'));
  if (dockerProblem) log(`${dockerProblem} (the mesh starts; deploys fail until the engine answers)`);
  let natsUrl = process.env.NATS_URL;
  let nats; // our own server's credentials; with NATS_URL set, NATS_USER/NATS_PASSWORD are passed through
  let natsReplicas = process.env.NATS_REPLICAS;
  if (!natsUrl) {
    nats = await natsAuthorization();
    const servers = NATS_CLUSTER > 1 ? await natsCluster(nats) : [{ name: 'nats', port: NATS_PORT, args: ['-c', nats.configFile] }];
    for (const n of servers) {
      if (await portOpen(n.port))
        throw new Error(`port ${n.port} (NATS) is taken${portHolder(n.port)}: stop it, set NATS_PORT, or set NATS_URL to use that server`);
      const storeDir = join(DATA_DIR, n.name);
      supervisor.add(n.name, { cmd: 'nats-server', args: [...n.args, '-js', '-a', '127.0.0.1', '-p', String(n.port), '-sd', storeDir] });
    }
    for (const n of servers) await waitUntil(n.name, () => portOpen(n.port), 15_000);
    natsUrl = servers.map((n) => `nats://127.0.0.1:${n.port}`).join(',');
    natsReplicas ??= String(Math.min(3, servers.length));
  }
  const imageRegistry = process.env.MESH_REGISTRY === 'off' ? undefined : await meshImageRegistry();
  // Only the deployer gets the registry's credentials.
  const deployerEnv = imageRegistry
    ? {
        MESH_REGISTRY: imageRegistry.host,
        MESH_REGISTRY_USERNAME: imageRegistry.username,
        MESH_REGISTRY_PASSWORD: imageRegistry.password,
        // Provisioned servers trust the registry's CA (certs.d in their user_data).
        MESH_REGISTRY_CA_FILE: imageRegistry.caFile,
      }
    : process.env.MESH_REGISTRY === 'off'
      ? { MESH_REGISTRY: '' }
      : {};
  const common = {
    NATS_URL: natsUrl,
    ...(natsReplicas ? { NATS_REPLICAS: natsReplicas } : {}),
    DATA_DIR,
    REGISTRY_URL: process.env.REGISTRY_URL ?? 'http://127.0.0.1:8000',
    REGISTRY_ADMIN_KEY: ADMIN_KEY,
    // Each droplet uses the admin key to register itself; the registry hands it its own key.
    REGISTRY_KEY: ADMIN_KEY,
    DEPLOYER_MASTER_KEY: persistentSecret('DEPLOYER_MASTER_KEY').value,
    CERT_ENCRYPTION_KEY: persistentSecret('CERT_ENCRYPTION_KEY').value,
  };
  const started = [];
  /** Start one replica of `d` and wait until it answers /health. */
  const startReplica = async (d, main, replica) => {
    const port = dropletPort(d) + replica - 1;
    const startedAt = Date.now();
    const natsIdentity = nats ? { NATS_USER: d.name, NATS_PASSWORD: nats.passwords[d.name] } : {};
    const part = replica > 1 ? `${d.name}-${replica}` : d.name;
    supervisor.add(part, {
      cmd: process.execPath,
      // The same node arguments as the images' CMD (scripts/droplet-node-args.mjs).
      args: [...DROPLET_NODE_ARGS, main],
      service: d.name,
      env: {
        ...common,
        ...natsIdentity,
        ...(d.name === 'deployer' ? deployerEnv : {}),
        PORT: String(port),
        ...replicaEnv(d, replica, proxyPorts),
      },
    });
    const logFile = supervisor.logFile(part);
    const url = `http://127.0.0.1:${port}`;
    // Up means /health answers; a dependency that is down (say, no Docker Engine) is reported, not fatal.
    let health;
    let answeredAt;
    await waitUntil(
      `${part} (log: ${logFile})`,
      async () => {
        health = await fetch(`${url}/health`).then((r) => r.json());
        answeredAt ??= Date.now();
        // `error` right after start may be a check still settling: give it a few seconds.
        return health.status === 'active' || (health.status === 'error' && Date.now() - answeredAt > 5000);
      },
      60_000,
    );
    started.push({ ...d, url });
    log(`${part.padEnd(20)} ${url}   (${Date.now() - startedAt} ms${health.status === 'active' ? '' : `, ${health.status}`})`);
    for (const dep of health.dependencies.filter((x) => x.status === 'down'))
      log(`  ${part}: ${dep.name} is down: ${typeof dep.detail === 'string' ? dep.detail : JSON.stringify(dep.detail)}`);
  };
  // The first replica of each droplet in order; further replicas start alongside the next droplets.
  const moreReplicas = [];
  for (const d of DROPLETS) {
    const main = join(ROOT, 'services', d.name, 'dist', 'main.js');
    if (!existsSync(main)) continue;
    await startReplica(d, main, 1);
    for (const replica of replicaNumbers.slice(1)) {
      const starting = startReplica(d, main, replica);
      starting.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      moreReplicas.push(starting);
    }
  }
  await Promise.all(moreReplicas);
  const tokenRes = await fetch(`${common.REGISTRY_URL}/auth/token?droplet_id=operator`, {
    method: 'POST',
    headers: { 'x-registry-key': ADMIN_KEY },
  });
  const tok = await tokenRes.json();
  if (!tokenRes.ok) throw new Error(`the registry refused the operator token: ${tok.error?.message ?? tokenRes.status}`);
  process.stdout.write('\n');
  log(`NATS                 ${natsUrl} (JetStream data under ${DATA_DIR}${natsReplicas ? `, ${natsReplicas} replicas per bucket` : ''})`);
  if (nats) log(`NATS authorization   one user per droplet; passwords in ${nats.credentialsFile} (mode 0600)`);
  if (imageRegistry)
    log(
      `image registry       ${imageRegistry.url} (TLS, CA ${imageRegistry.caFile}; credentials in ${imageRegistry.credentialsFile}, mode 0600)`,
    );
  log(`logs                 ${join(DATA_DIR, 'logs')}/<droplet>.log`);
  if (adminKey.file) log(`REGISTRY_ADMIN_KEY   in ${adminKey.file} (mode 0600${adminKey.generated ? ', generated now' : ''})`);
  log(`operator token (expires ${tok.expires_at}):\n${tok.token}\n`);
  log(`try: curl -H "Authorization: Bearer $TOKEN" ${started[0].url}/droplets`);
  log('a part that dies is restarted; Ctrl-C stops everything.');
} catch (err) {
  log(`start failed: ${err.message}`);
  await stopAll(1);
}
