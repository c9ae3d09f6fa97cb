import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ensureBusyboxImage, ensureNodeBaseImage, type ensureDockerEngine } from '@droplet-mesh/docker-testing';
import { REPO } from './processes.js';

// Builds the images docker-compose.yml runs, the way deploy/README.md describes, from
// base images made on this machine (no image registry, no network in the build).
// An image is rebuilt only when a hash of its inputs changed; the hash is its label.

/** dockerode's client, as docker-testing hands it out. */
export type Docker = Awaited<ReturnType<typeof ensureDockerEngine>>;

const DEPLOY = join(REPO, 'deploy');
const INPUTS_LABEL = 'mesh.inputs';
/** Set in the first stage of deploy/*.Dockerfile. */
const BUNDLE_STAGE_LABEL = 'droplet-mesh.build-stage=bundle';

export interface DropletImageSpec {
  service: string;
  port: number;
  dockerfile: 'droplet.Dockerfile' | 'proxy-manager.Dockerfile';
}

export const DROPLET_IMAGES: DropletImageSpec[] = [
  { service: 'registry', port: 8000, dockerfile: 'droplet.Dockerfile' },
  { service: 'multi-cloud-manager', port: 8010, dockerfile: 'droplet.Dockerfile' },
  { service: 'proxy-manager', port: 8100, dockerfile: 'proxy-manager.Dockerfile' },
  { service: 'deployer', port: 8200, dockerfile: 'droplet.Dockerfile' },
  { service: 'health-monitor', port: 8300, dockerfile: 'droplet.Dockerfile' },
  { service: 'console', port: 8400, dockerfile: 'droplet.Dockerfile' },
  { service: 'orchestrator', port: 8500, dockerfile: 'droplet.Dockerfile' },
];

export interface ComposeImages {
  /** MESH_IMAGE_REPO and MESH_IMAGE_TAG for docker-compose.yml. */
  repo: string;
  tag: string;
  /** NATS_IMAGE: nats-server from this host. */
  natsImage: string;
  nodeBaseImage: string;
  built: string[];
  reused: string[];
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, env: opts.env ?? process.env, timeout: opts.timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err)
          reject(
            new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${String(stderr).slice(-3000)}${String(stdout).slice(-2000)}`),
          );
        else resolve(String(stdout));
      },
    );
  });
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/**
 * pnpm deploy hard-links our workspace packages' files into the bundle: a rebuild of, say,
 * udc-kit while the context is sent would change them mid-transfer (a broken tar). Copies
 * make the bundle a snapshot.
 */
function detachHardLinks(dir: string): void {
  for (const f of filesUnder(dir)) {
    if (statSync(f).nlink < 2) continue;
    const copy = `${f}.detach`;
    copyFileSync(f, copy);
    renameSync(copy, f);
  }
}

/** package name → directory, for every workspace package (packages/*, services/*). */
function workspacePackages(): Map<string, string> {
  const map = new Map<string, string>();
  for (const group of ['packages', 'services']) {
    for (const e of readdirSync(join(REPO, group), { withFileTypes: true })) {
      const pkgFile = join(REPO, group, e.name, 'package.json');
      if (e.isDirectory() && existsSync(pkgFile)) map.set(JSON.parse(readFileSync(pkgFile, 'utf8')).name, join(REPO, group, e.name));
    }
  }
  return map;
}

/** The service's directory and those of the workspace packages it needs at run time. */
function runtimeClosure(service: string, packages: Map<string, string>): string[] {
  const seen = new Set<string>();
  const visit = (name: string) => {
    const dir = packages.get(name);
    if (!dir || seen.has(dir)) return;
    seen.add(dir);
    const deps: Record<string, string> = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).dependencies ?? {};
    for (const [dep, range] of Object.entries(deps)) if (range.startsWith('workspace:')) visit(dep);
  };
  visit(`@droplet-mesh/${service}`);
  if (seen.size === 0) throw new Error(`no workspace package @droplet-mesh/${service}`);
  return [...seen].sort();
}

function hashInputs(files: string[], extra: Record<string, string>): string {
  const h = createHash('sha256');
  for (const [k, v] of Object.entries(extra).sort()) h.update(`${k}=${v}\n`);
  for (const f of [...files].sort()) {
    h.update(`${relative(REPO, f)}\n`);
    h.update(readFileSync(f));
  }
  return h.digest('hex').slice(0, 32);
}

async function imageInfo(docker: Docker, tag: string): Promise<{ id: string; inputs?: string } | undefined> {
  try {
    const info = await docker.getImage(tag).inspect();
    return { id: info.Id, inputs: info.Config?.Labels?.[INPUTS_LABEL] };
  } catch {
    return undefined;
  }
}

/**
 * `docker build` with the classic builder, as deploy/README.md does. (docker-testing's
 * buildImageFromDir tars in-process; under jest its PAX headers for long paths, which
 * pnpm's node_modules have, carry a non-numeric mtime that the Engine refuses.)
 */
function dockerBuild(context: string, tag: string, buildArgs: Record<string, string>, labels: Record<string, string>): Promise<string> {
  const args = [
    'build',
    '--quiet',
    '-t',
    tag,
    ...Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
    ...Object.entries(labels).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
    context,
  ];
  return run('docker', args, { env: { ...process.env, DOCKER_BUILDKIT: '0' }, timeoutMs: 15 * 60_000 });
}

/** Build `tag` from the context `prepare` fills, unless an image with the same inputs exists. */
async function ensureImage(
  docker: Docker,
  tag: string,
  inputs: string,
  prepare: (contextDir: string) => Promise<void>,
  buildArgs: Record<string, string>,
): Promise<'built' | 'reused'> {
  const existing = await imageInfo(docker, tag);
  if (existing?.inputs === inputs) return 'reused';
  const context = mkdtempSync(join(tmpdir(), 'mesh-image-'));
  try {
    await prepare(context);
    await dockerBuild(context, tag, buildArgs, { [INPUTS_LABEL]: inputs });
  } finally {
    rmSync(context, { recursive: true, force: true });
  }
  // The replaced image is now untagged: remove it unless a container still uses it.
  if (existing)
    await docker
      .getImage(existing.id)
      .remove()
      .catch(() => undefined);
  return 'built';
}

const collectHostBinaries = (root: string, binaries: string[]) =>
  run(join(DEPLOY, 'local-base', 'collect-host-binaries.sh'), [root, ...binaries], { timeoutMs: 60_000 });

function hostBinaryFiles(binaries: string[]): string[] {
  return binaries.map((b) => {
    const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, b)).find((p) => existsSync(p));
    if (!found) throw new Error(`${b} is not installed on this machine`);
    return realpathSync(found);
  });
}

/** Debian's lua module for nginx (libnginx-mod-http-ndk, libnginx-mod-http-lua) and lua-resty-core, where the host has them. */
const NGINX_LUA_MODULES = ['/usr/lib/nginx/modules/ndk_http_module.so', '/usr/lib/nginx/modules/ngx_http_lua_module.so'];
const LUA_RESTY_DIRS = ['/usr/share/lua/5.1/resty', '/usr/share/lua/5.1/ngx'];

/** The host's lua module files, their libraries (ldd) and lua-resty-core, or none when any is missing. */
async function hostLuaFiles(): Promise<string[]> {
  if (!NGINX_LUA_MODULES.every((f) => existsSync(f)) || !existsSync('/usr/share/lua/5.1/resty/core.lua')) return [];
  const files = new Set<string>();
  for (const module of NGINX_LUA_MODULES) {
    files.add(module);
    const stdout = await run('ldd', [module], { timeoutMs: 30_000 });
    for (const lib of stdout.match(/\/\S*\.so\S*/g) ?? []) files.add(lib);
  }
  for (const dir of LUA_RESTY_DIRS) for (const f of filesUnder(dir)) files.add(f);
  return [...files];
}

/**
 * node base + the host's nginx: the offline BASE_IMAGE of deploy/proxy-manager.Dockerfile.
 * With the host's lua module and lua-resty-core at Debian's paths (where proxy-manager's
 * NGINX_MODULES_DIR and LuaJIT's default package path look), so upstream changes switch
 * without reloads in the compose mesh too.
 */
export async function ensureNodeNginxBase(docker: Docker, nodeBase: string, tag: string): Promise<'built' | 'reused'> {
  const dockerfile = join(DEPLOY, 'local-base', 'host-binaries.Dockerfile');
  const base = await imageInfo(docker, nodeBase);
  const lua = await hostLuaFiles();
  const inputs = hashInputs([dockerfile, join(DEPLOY, 'local-base', 'collect-host-binaries.sh'), ...hostBinaryFiles(['nginx']), ...lua], {
    base: base!.id,
  });
  return ensureImage(
    docker,
    tag,
    inputs,
    async (ctx) => {
      copyFileSync(dockerfile, join(ctx, 'Dockerfile'));
      await collectHostBinaries(join(ctx, 'root'), ['nginx']);
      // Same paths in the image; the file's contents, not a link (cp -L in collect-host-binaries.sh).
      for (const f of lua) {
        mkdirSync(join(ctx, 'root', dirname(f)), { recursive: true });
        copyFileSync(realpathSync(f), join(ctx, 'root', f));
      }
    },
    { BASE_IMAGE: nodeBase },
  );
}

/** nats-server from this host on busybox (wget for the healthcheck): deploy/nats/local.Dockerfile. */
export async function ensureLocalNats(docker: Docker, busybox: string, tag: string): Promise<'built' | 'reused'> {
  const dockerfile = join(DEPLOY, 'nats', 'local.Dockerfile');
  const base = await imageInfo(docker, busybox);
  const inputs = hashInputs([dockerfile, join(DEPLOY, 'local-base', 'collect-host-binaries.sh'), ...hostBinaryFiles(['nats-server'])], {
    base: base!.id,
  });
  return ensureImage(
    docker,
    tag,
    inputs,
    async (ctx) => {
      copyFileSync(dockerfile, join(ctx, 'Dockerfile'));
      mkdirSync(join(ctx, 'data'));
      await collectHostBinaries(join(ctx, 'root'), ['nats-server']);
    },
    { BASE_IMAGE: busybox },
  );
}

/** `pnpm deploy --prod` of the service (its built dist/) into `<ctx>/app`, then the Dockerfile's stages. */
async function ensureDropletImage(
  docker: Docker,
  spec: DropletImageSpec,
  tag: string,
  baseImage: string,
  packages: Map<string, string>,
): Promise<'built' | 'reused'> {
  const dockerfile = join(DEPLOY, spec.dockerfile);
  const prune = join(DEPLOY, 'prune-bundle.mjs');
  const dirs = runtimeClosure(spec.service, packages);
  for (const d of dirs) if (!existsSync(join(d, 'dist'))) throw new Error(`${relative(REPO, d)} is not built (run the build first)`);
  const buildArgs: Record<string, string> =
    spec.dockerfile === 'proxy-manager.Dockerfile'
      ? { BASE_IMAGE: baseImage, INSTALL_NGINX: 'false' }
      : { BASE_IMAGE: baseImage, SERVICE: spec.service, PORT: String(spec.port) };
  const base = await imageInfo(docker, baseImage);
  const files = [
    join(REPO, 'pnpm-lock.yaml'),
    dockerfile,
    prune,
    ...dirs.flatMap((d) => [join(d, 'package.json'), ...filesUnder(join(d, 'dist'))]),
  ];
  const inputs = hashInputs(files, { base: base!.id, ...buildArgs });
  return ensureImage(
    docker,
    tag,
    inputs,
    async (ctx) => {
      // A shared lock: installs (exclusive, see the repo's habits) do not change the
      // workspace under a running deploy. --prefer-offline: packages come from the store the
      // install filled; metadata a fresh machine has not cached yet is fetched, not assumed.
      // Copies, not hard links into pnpm's store: files the store deduplicates would become
      // tar hard-link entries, which the Engine's build-context reader refuses.
      const args = [
        '--filter',
        `@droplet-mesh/${spec.service}`,
        'deploy',
        '--legacy',
        '--prod',
        '--prefer-offline',
        '--config.package-import-method=copy',
        join(ctx, 'app'),
      ];
      await run('flock', ['-s', '-w', '600', '/tmp/pnpm.lock', 'corepack', 'pnpm', ...args], {
        cwd: REPO,
        env: { ...process.env, COREPACK_ENABLE_DOWNLOAD_PROMPT: '0', CI: '1' },
        timeoutMs: 10 * 60_000,
      });
      detachHardLinks(join(ctx, 'app'));
      copyFileSync(dockerfile, join(ctx, 'Dockerfile'));
      copyFileSync(prune, join(ctx, 'prune-bundle.mjs'));
    },
    buildArgs,
  );
}

/** Two at a time: the machine has two cores and other suites. */
async function inPairs<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await fn(item);
  };
  await Promise.all([worker(), worker()]);
}

/** Every image docker-compose.yml needs, made locally; reuses images whose inputs did not change. */
export async function ensureComposeImages(docker: Docker, opts: { repo?: string; tag?: string } = {}): Promise<ComposeImages> {
  const repo = opts.repo ?? 'droplet-mesh';
  const tag = opts.tag ?? 'e2e';
  const result: ComposeImages = {
    repo,
    tag,
    natsImage: 'mesh-local/nats:compose',
    nodeBaseImage: await ensureNodeBaseImage(docker),
    built: [],
    reused: [],
  };
  const note = (name: string, outcome: 'built' | 'reused') => result[outcome].push(name);
  const nodeNginxBase = 'mesh-local/node-nginx:20';
  note(nodeNginxBase, await ensureNodeNginxBase(docker, result.nodeBaseImage, nodeNginxBase));
  note(result.natsImage, await ensureLocalNats(docker, await ensureBusyboxImage(docker), result.natsImage));
  const packages = workspacePackages();
  await inPairs(DROPLET_IMAGES, async (spec) => {
    const image = `${repo}/${spec.service}:${tag}`;
    const base = spec.dockerfile === 'proxy-manager.Dockerfile' ? nodeNginxBase : result.nodeBaseImage;
    note(image, await ensureDropletImage(docker, spec, image, base, packages));
  });
  // The classic builder keeps each build's first stage as an untagged image (~60 MB).
  await docker.pruneImages({ filters: { dangling: ['true'], label: [BUNDLE_STAGE_LABEL] } });
  return result;
}
