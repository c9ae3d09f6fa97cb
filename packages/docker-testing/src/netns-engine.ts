// A real Docker Engine of its own, on this machine, for tests that need several servers:
// `dockerd` in a network namespace made here (a veth pair with a private /30), reachable
// from the host only at tcp://<ns address>:<port> over mutual TLS, with its own data root,
// exec root, containerd, cgroup parent and a private unix socket for the test's own setup
// (loading images). Needs root, iproute2 (`ip netns`), nsenter and dockerd.
//
// Found on Debian 12 / Docker 20.10: `ip netns exec` remounts /sys in a new mount
// namespace, hiding the cgroup v1 mounts ("Devices cgroup isn't mounted"), so dockerd
// enters only the network namespace (`nsenter --net=/var/run/netns/<ns>`). `--bridge=none
// --iptables=false --ip6tables=false` leaves the host's firewall alone; user-defined bridge
// networks still work inside the namespace and published ports go through docker-proxy.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Docker from 'dockerode';

export interface EngineTls {
  /** The CA whose certificates the engine accepts from clients (--tlscacert). */
  ca: string;
  /** The engine's own certificate and key (--tlscert, --tlskey); the SANs must name `address`. */
  cert: string;
  key: string;
}

export interface NamespacedEngineOptions {
  /** TLS material, or a function given the engine's address (to issue a certificate naming it). */
  tls: EngineTls | ((address: string) => Promise<EngineTls> | EngineTls);
  /** TCP port of the Engine API inside the namespace (default 2376). */
  port?: number;
  startTimeoutMs?: number;
  /** Where the engine's directories go (default /tmp; kept short: unix socket paths are limited). */
  baseDir?: string;
}

export interface NamespacedEngine {
  /** Network namespace name (`ip netns`). */
  netns: string;
  /** The engine's address (inside the namespace) and the host's end of the veth pair. */
  address: string;
  hostAddress: string;
  port: number;
  /** tcp://address:port: the only way in from the host network, mutual TLS. */
  dockerHost: string;
  /** The engine over its private unix socket (test setup only: images, inspection). */
  docker: Docker;
  socketPath: string;
  dir: string;
  /** The engine as a lost server: every process of it killed at once (no cleanup). */
  kill(): void;
  /** Stop and remove everything: containers, daemons, mounts, namespace, veth, directories, cgroups. */
  stop(): Promise<void>;
}

type EngineState = { netns: string; hostIf: string; dir: string; cgroupParent: string };
const live = new Map<NamespacedEngine, EngineState>();
let exitHookInstalled = false;
let counter = 0;

function run(cmd: string, args: string[], opts: { ignore?: boolean } = {}): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    if (opts.ignore) return '';
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

function which(bin: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  return dirs.map((d) => join(d, bin)).find((p) => existsSync(p));
}

/** Why namespaced engines cannot run here, or undefined when they can. */
export function namespacedEngineUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'needs root (ip netns, dockerd)';
  for (const b of ['ip', 'nsenter', 'dockerd', 'containerd', 'runc']) if (!which(b)) return `${b} is not installed`;
  return undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every pid in the namespace (`ip netns pids`) and in the engine's cgroup parent. */
function enginePids(netns: string, cgroupParent: string): number[] {
  const pids = new Set<number>();
  for (const l of run('ip', ['netns', 'pids', netns], { ignore: true }).split('\n')) if (/^\d+$/.test(l.trim())) pids.add(Number(l));
  for (const tasks of cgroupTaskFiles(cgroupParent))
    for (const l of readFileSync(tasks, 'utf8').split('\n')) if (/^\d+$/.test(l.trim())) pids.add(Number(l));
  pids.delete(process.pid);
  return [...pids];
}

/** cgroup v1: <controller>/<parent>/**​/tasks; cgroup v2: <parent>/**​/cgroup.procs. */
function cgroupDirs(parent: string): string[] {
  const roots = existsSync('/sys/fs/cgroup/cgroup.controllers')
    ? ['/sys/fs/cgroup']
    : readdirSync('/sys/fs/cgroup').map((c) => join('/sys/fs/cgroup', c));
  const out: string[] = [];
  const walk = (d: string) => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    out.push(d); // children before parents (rmdir order)
  };
  for (const r of roots) walk(join(r, parent));
  return out;
}

function cgroupTaskFiles(parent: string): string[] {
  return cgroupDirs(parent)
    .map((d) => (existsSync(join(d, 'cgroup.procs')) ? join(d, 'cgroup.procs') : join(d, 'tasks')))
    .filter((f) => existsSync(f));
}

function killAll(netns: string, cgroupParent: string): void {
  for (let round = 0; round < 5; round++) {
    const pids = enginePids(netns, cgroupParent);
    if (pids.length === 0) return;
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    execFileSync('sleep', ['0.2']);
  }
}

function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .map((m) => m.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) run('umount', ['-l', m], { ignore: true });
}

/** Synchronous teardown (also used by the exit hook): kill, unmount, delete namespace, veth, cgroups, files. */
function teardown(s: EngineState): void {
  killAll(s.netns, s.cgroupParent);
  unmountUnder(s.dir);
  run('ip', ['netns', 'del', s.netns], { ignore: true });
  run('ip', ['link', 'del', s.hostIf], { ignore: true });
  for (const d of cgroupDirs(s.cgroupParent)) {
    try {
      rmdirSync(d);
    } catch {
      /* busy or gone */
    }
  }
  rmSync(s.dir, { recursive: true, force: true });
}

/** Namespaces a dead test process left behind (named dmesh-<pid>-<n>) are removed. */
function removeStale(): void {
  for (const l of run('ip', ['netns', 'list'], { ignore: true }).split('\n')) {
    const m = /^(dmesh-(\d+)-(\d+))\b/.exec(l.trim());
    if (!m || pidAlive(Number(m[2]))) continue;
    const dirFile = `/run/dmesh/${m[1]}`;
    const dir = existsSync(dirFile) ? readFileSync(dirFile, 'utf8').trim() : '';
    teardown({ netns: m[1], hostIf: `dmh${m[2]}x${m[3]}`.slice(0, 15), dir: dir || '/nonexistent-dmesh', cgroupParent: m[1] });
    rmSync(dirFile, { force: true });
  }
}

/** A free /30 in 10.231.0.0/16 not on any interface here: [host, namespace]. */
function freeSubnet(): [string, string] {
  const used = run('ip', ['-4', '-o', 'addr', 'show'], { ignore: true });
  for (let tries = 0; tries < 200; tries++) {
    const n = Math.floor(Math.random() * 16_384);
    const base = n * 4;
    const a = `10.231.${base >> 8}.${(base & 255) + 1}`;
    const b = `10.231.${base >> 8}.${(base & 255) + 2}`;
    if (!used.includes(` ${a}/`) && !used.includes(` ${b}/`)) return [a, b];
  }
  throw new Error('no free /30 in 10.231.0.0/16');
}

async function waitPing(docker: Docker, child: ChildProcess, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`dockerd exited (${child.exitCode}): ${readFileSync(logFile, 'utf8').split('\n').slice(-8).join('\n')}`);
    try {
      await docker.ping();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`dockerd did not answer within ${timeoutMs} ms: ${readFileSync(logFile, 'utf8').split('\n').slice(-8).join('\n')}`);
}

/**
 * Start a Docker Engine in a new network namespace, reachable at tcp://<address>:<port>
 * with mutual TLS only. Call `stop()` in afterAll; an exit hook tears down what is left if
 * the test process ends first, and namespaces of dead test processes are removed at the next start.
 */
export async function startNamespacedEngine(opts: NamespacedEngineOptions): Promise<NamespacedEngine> {
  const why = namespacedEngineUnavailable();
  if (why) throw new Error(`cannot start a namespaced Docker Engine: ${why}`);
  removeStale();
  const n = ++counter;
  const netns = `dmesh-${process.pid}-${n}`;
  const hostIf = `dmh${process.pid}x${n}`.slice(0, 15);
  const nsIf = `dmn${process.pid}x${n}`.slice(0, 15);
  const cgroupParent = netns;
  const port = opts.port ?? 2376;
  const dir = mkdtempSync(join(opts.baseDir ?? '/tmp', 'dmesh-'));
  mkdirSync('/run/dmesh', { recursive: true });
  writeFileSync(`/run/dmesh/${netns}`, dir);
  const state = { netns, hostIf, dir, cgroupParent };
  let child: ChildProcess | undefined;
  const fail = (err: unknown): never => {
    child?.kill('SIGKILL');
    teardown(state);
    rmSync(`/run/dmesh/${netns}`, { force: true });
    throw err;
  };
  try {
    const [hostAddress, address] = freeSubnet();
    run('ip', ['netns', 'add', netns]);
    run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    run('ip', ['link', 'set', nsIf, 'netns', netns]);
    run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    run('ip', ['link', 'set', hostIf, 'up']);
    run('ip', ['-n', netns, 'addr', 'add', `${address}/30`, 'dev', nsIf]);
    run('ip', ['-n', netns, 'link', 'set', nsIf, 'up']);
    run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);

    const tls = typeof opts.tls === 'function' ? await opts.tls(address) : opts.tls;
    const tlsDir = join(dir, 'tls');
    mkdirSync(tlsDir, { mode: 0o700 });
    writeFileSync(join(tlsDir, 'ca.pem'), tls.ca);
    writeFileSync(join(tlsDir, 'cert.pem'), tls.cert);
    writeFileSync(join(tlsDir, 'key.pem'), tls.key, { mode: 0o600 });
    const socketPath = join(dir, 'docker.sock');
    const logFile = join(dir, 'dockerd.log');
    const log = openSync(logFile, 'a');
    child = spawn(
      which('nsenter')!,
      [
        `--net=/var/run/netns/${netns}`,
        which('dockerd')!,
        `--host=tcp://${address}:${port}`,
        `--host=unix://${socketPath}`,
        '--tlsverify',
        `--tlscacert=${join(tlsDir, 'ca.pem')}`,
        `--tlscert=${join(tlsDir, 'cert.pem')}`,
        `--tlskey=${join(tlsDir, 'key.pem')}`,
        `--data-root=${join(dir, 'data')}`,
        `--exec-root=${join(dir, 'exec')}`,
        `--pidfile=${join(dir, 'docker.pid')}`,
        `--cgroup-parent=${cgroupParent}`,
        '--bridge=none',
        '--iptables=false',
        '--ip6tables=false',
        '--ip-masq=false',
      ],
      {
        stdio: ['ignore', log, log],
        env: { ...process.env, DOCKER_HOST: undefined, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/usr/bin:/sbin:/bin` },
      },
    );
    const docker = new Docker({ socketPath });
    await waitPing(docker, child, opts.startTimeoutMs ?? 60_000, logFile);
    const dockerd = child;
    let stopped = false;
    const engine: NamespacedEngine = {
      netns,
      address,
      hostAddress,
      port,
      dockerHost: `tcp://${address}:${port}`,
      docker,
      socketPath,
      dir,
      kill() {
        killAll(netns, cgroupParent);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        live.delete(engine);
        try {
          if (dockerd.exitCode === null) {
            const list = await Promise.race([
              docker.listContainers({ all: true }),
              new Promise<[]>((r) => setTimeout(() => r([]), 10_000).unref()),
            ]).catch(() => []);
            await Promise.all(
              list.map((c) =>
                docker
                  .getContainer(c.Id)
                  .remove({ force: true })
                  .catch(() => undefined),
              ),
            );
            dockerd.kill('SIGTERM');
            const deadline = Date.now() + 15_000;
            while (dockerd.exitCode === null && dockerd.signalCode === null && Date.now() < deadline)
              await new Promise((r) => setTimeout(r, 100));
          }
        } finally {
          teardown(state);
          rmSync(`/run/dmesh/${netns}`, { force: true });
        }
      },
    };
    live.set(engine, state);
    if (!exitHookInstalled) {
      exitHookInstalled = true;
      process.once('exit', () => {
        for (const s of live.values()) {
          try {
            teardown(s);
            rmSync(`/run/dmesh/${s.netns}`, { force: true });
          } catch {
            /* best effort at exit */
          }
        }
      });
    }
    return engine;
  } catch (err) {
    return fail(err);
  }
}

/** Copy images from one engine to another (`docker save` | `docker load`): test engines get images from local files only. */
export async function copyImages(from: Docker, to: Docker, refs: string[]): Promise<void> {
  for (const ref of refs) {
    const out = await to.loadImage(await from.getImage(ref).get());
    await new Promise<void>((resolve, reject) =>
      to.modem.followProgress(out, (err, res) => {
        if (err) return reject(err);
        const failed = (res as Array<{ error?: string }>).find((r) => r.error);
        return failed ? reject(new Error(`loading ${ref} failed: ${failed.error}`)) : resolve();
      }),
    );
  }
}
