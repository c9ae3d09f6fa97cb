// Installs what the mesh needs on a fresh Debian machine that has only Node 20 and npm:
// Debian packages (when root and missing), pnpm through corepack, node modules, a build.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

// corepack must fetch pnpm without prompting; the npm registry mirror here serves no signatures.
process.env.COREPACK_ENABLE_DOWNLOAD_PROMPT = '0';
process.env.COREPACK_INTEGRITY_KEYS = process.env.COREPACK_INTEGRITY_KEYS ?? '0';
process.env.TURBO_TELEMETRY_DISABLED = '1';
process.env.DO_NOT_TRACK = '1';

const APT = {
  start: { 'nats-server': 'nats-server', nginx: 'nginx' },
  test: {
    'nats-server': 'nats-server',
    nginx: 'nginx',
    pebble: 'pebble',
    dockerd: 'docker.io',
    busybox: 'busybox-static',
    git: 'git',
    'docker-compose': 'docker-compose',
    openssl: 'openssl',
  },
};

function has(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin} || test -x /usr/sbin/${bin} || test -x /usr/bin/${bin}`], { stdio: 'ignore' }).status === 0;
}

export function log(msg) {
  process.stdout.write(`[mesh] ${msg}\n`);
}

function run(cmd, args, opts = {}) {
  execFileSync(cmd, args, { stdio: 'inherit', cwd: ROOT, env: process.env, ...opts });
}

export function ensureAptPackages(mode) {
  const missing = [...new Set(Object.entries(APT[mode]).filter(([bin]) => !has(bin)).map(([, pkg]) => pkg))];
  if (!missing.length) return;
  const isRoot = process.getuid?.() === 0;
  if (!isRoot) {
    log(`missing Debian packages: ${missing.join(' ')} — install them (sudo apt-get install -y ${missing.join(' ')}) or run as root`);
    if (mode === 'test') throw new Error('missing system packages');
    return;
  }
  log(`installing Debian packages: ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

export function pnpm(args, opts = {}) {
  run('corepack', ['pnpm', ...args], opts);
}

export function ensureNodeModulesAndBuild() {
  log('installing node modules (pnpm through corepack)');
  pnpm(['install', ...(process.env.CI ? ['--frozen-lockfile'] : []), '--reporter=append-only']);
  log('building every package');
  pnpm(['exec', 'turbo', 'run', 'build', '--output-logs=errors-only', '--env-mode=loose']);
}

export function ensureWorld(mode) {
  ensureAptPackages(mode);
  ensureNodeModulesAndBuild();
  if (!existsSync(join(ROOT, 'services/registry/dist/main.js'))) throw new Error('build did not produce services/registry/dist/main.js');
}
