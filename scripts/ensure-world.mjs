// Installs what the mesh needs on a fresh Debian machine that has only Node 20 and npm:
// Debian packages (when root and missing), pnpm through corepack (with a `pnpm` on PATH,
// which turbo looks for), node modules, a build. Failures end in one line naming the fix.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const TOOLS_BIN = join(ROOT, '.tools', 'bin');
const DOCKER_SOCKET = '/var/run/docker.sock';

// corepack must fetch pnpm without prompting; the npm registry mirror here serves no signatures.
process.env.COREPACK_ENABLE_DOWNLOAD_PROMPT = '0';
process.env.COREPACK_INTEGRITY_KEYS = process.env.COREPACK_INTEGRITY_KEYS ?? '0';
process.env.TURBO_TELEMETRY_DISABLED = '1';
process.env.DO_NOT_TRACK = '1';

/** A failure the user can fix: printed as one line, never as a stack trace. */
export class SetupError extends Error {}

// Packages without a binary are found by a file they install (an absolute path).
const LUA_MODULE = '/usr/lib/nginx/modules/ngx_http_lua_module.so';
const RESTY_CORE = '/usr/share/lua/5.1/resty/core.lua';

const APT = {
  // The mesh image registry (docker-registry) gets its certificates from openssl.
  start: {
    'nats-server': 'nats-server',
    nginx: 'nginx',
    dockerd: 'docker.io',
    'docker-registry': 'docker-registry',
    openssl: 'openssl',
    // proxy-manager's reload-free upstream changes (a Lua balancer); without them it falls back to reloads.
    [LUA_MODULE]: 'libnginx-mod-http-lua',
    [RESTY_CORE]: 'lua-resty-core',
  },
  test: {
    'nats-server': 'nats-server',
    nginx: 'nginx',
    [LUA_MODULE]: 'libnginx-mod-http-lua',
    [RESTY_CORE]: 'lua-resty-core',
    pebble: 'pebble',
    dockerd: 'docker.io',
    busybox: 'busybox-static',
    git: 'git',
    'docker-compose': 'docker-compose',
    openssl: 'openssl',
    // The mesh image registry and private registries in the deployer's tests.
    'docker-registry': 'docker-registry',
    flock: 'util-linux',
    // Namespaced Docker engines (several "servers" on one machine) in the deployer's tests.
    ip: 'iproute2',
    // The cloud-init user_data of provisioned servers is validated with `cloud-init schema`, its report script run with curl.
    'cloud-init': 'cloud-init',
    curl: 'curl',
    // The console's browser tests drive Debian's chromium through playwright-core (no browser download).
    chromium: 'chromium',
  },
};

const isRoot = () => process.getuid?.() === 0;

function has(bin) {
  if (bin.startsWith('/')) return existsSync(bin);
  return ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].some((d) => existsSync(join(d, bin)));
}

export function log(msg) {
  process.stdout.write(`[mesh] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  try {
    execFileSync(cmd, args, { stdio: 'inherit', cwd: ROOT, env: process.env, ...opts });
  } catch (err) {
    throw new SetupError(`\`${[cmd, ...args].join(' ')}\` failed (${err.status ?? err.code ?? err.signal}); its output is above`);
  }
}

export function ensureAptPackages(mode) {
  const missing = [
    ...new Set(
      Object.entries(APT[mode])
        .filter(([bin]) => !has(bin))
        .map(([, pkg]) => pkg),
    ),
  ];
  if (!missing.length) return;
  if (!isRoot()) {
    const fix = `sudo apt-get install -y ${missing.join(' ')}`;
    if (mode === 'test') throw new SetupError(`missing Debian packages: ${missing.join(' ')}; fix: ${fix} (or run as root)`);
    log(`missing Debian packages: ${missing.join(' ')}; what needs them will report it as down. Fix: ${fix}`);
    return;
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
}

/** A `pnpm` executable on PATH for this process and its children (turbo needs one), served by corepack. */
export function ensurePnpmOnPath() {
  if (!existsSync(join(TOOLS_BIN, 'pnpm'))) {
    mkdirSync(TOOLS_BIN, { recursive: true });
    run('corepack', ['enable', '--install-directory', TOOLS_BIN, 'pnpm']);
  }
  if (!process.env.PATH?.split(':').includes(TOOLS_BIN)) process.env.PATH = `${TOOLS_BIN}:${process.env.PATH ?? ''}`;
  const version = spawnSync('pnpm', ['--version'], { cwd: ROOT, encoding: 'utf8' });
  if (version.status !== 0)
    throw new SetupError(`corepack could not provide pnpm (${(version.stderr || version.error?.message || '').trim().split('\n')[0]})`);
  log(`pnpm ${version.stdout.trim()} (through corepack)`);
}

export function pnpm(args, opts = {}) {
  run('pnpm', args, opts);
}

export function ensureNodeModulesAndBuild() {
  log('installing node modules');
  // confirmModulesPurge=false: when node_modules was installed from another store (another
  // HOME, say), pnpm rebuilds it instead of asking on a TTY that `npm start` may not have.
  pnpm(['install', ...(process.env.CI ? ['--frozen-lockfile'] : []), '--config.confirmModulesPurge=false', '--reporter=append-only']);
  log('building every package');
  pnpm(['exec', 'turbo', 'run', 'build', '--output-logs=errors-only', '--env-mode=loose']);
}

function dockerAnswers(timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = request({ socketPath: DOCKER_SOCKET, path: '/_ping', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/**
 * The local Docker Engine the deployer uses: already answering, or `dockerd` started here
 * when root (left running: it is the machine's engine). Never fatal: returns a line saying
 * what is wrong and how to fix it, or undefined when the engine answers.
 */
export async function ensureDockerEngine(logDir) {
  if (process.env.DOCKER_HOST) return undefined; // the deployer checks and reports that engine itself
  if (await dockerAnswers()) return undefined;
  if (!has('dockerd')) return 'Docker Engine is not installed; fix: sudo apt-get install -y docker.io';
  if (!isRoot())
    return `no Docker Engine answers at ${DOCKER_SOCKET}; fix: sudo dockerd & (or sudo systemctl start docker), or set DOCKER_HOST`;
  const logFile = join(logDir, 'dockerd.log');
  log(`starting dockerd (no engine answered at ${DOCKER_SOCKET}; log: ${logFile})`);
  const out = openSync(logFile, 'a');
  const child = spawn('dockerd', [], { detached: true, stdio: ['ignore', out, out] });
  child.unref();
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (await dockerAnswers()) return undefined;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return `dockerd did not start (see ${logFile}); fix what it reports, then restart npm start`;
}

export function ensureWorld(mode) {
  ensureAptPackages(mode);
  ensurePnpmOnPath();
  ensureNodeModulesAndBuild();
  if (!existsSync(join(ROOT, 'services/registry/dist/main.js')))
    throw new SetupError('the build did not produce services/registry/dist/main.js');
}

/** Runs `main`; a SetupError ends the process with its one line, anything else with its message. */
export async function runScript(main) {
  try {
    await main();
  } catch (err) {
    log(`error: ${err instanceof SetupError ? err.message : (err?.message ?? String(err))}`);
    process.exit(1);
  }
}
