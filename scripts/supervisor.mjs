// The supervisor behind `npm start`: runs each part as a child, restarts one that exits
// unexpectedly (exponential backoff, a restart budget), stops them in reverse order, and
// makes sure none outlives it. Hand-written rather than pm2 or similar: those daemonize,
// so their children outlive the terminal that started them, the opposite of what we want.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// util-linux's setpriv sets the parent-death signal before exec: if the supervisor is
// killed outright (kill -9), the kernel kills every child too (a graceful stop is stopAll's job).
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export class Supervisor {
  /**
   * @param {object} o
   * @param {string} o.dataDir where logs/<name>.log and children.json (live child pids) go
   * @param {(msg: string) => void} o.log
   * @param {number} [o.maxRestarts] restarts allowed within windowMs before giving up
   * @param {number} [o.windowMs]
   * @param {(name: string, reason: string) => void} o.onGiveUp
   */
  constructor(o) {
    this.o = { maxRestarts: 5, windowMs: 60_000, ...o };
    /** @type {Map<string, {name: string, spec: object, child?: import('node:child_process').ChildProcess, restarts: number[], timer?: NodeJS.Timeout}>} */
    this.parts = new Map();
    this.stopping = false;
  }

  logFile(name) {
    return join(this.o.dataDir, 'logs', `${name}.log`);
  }

  /** Start `name` (cmd, args, env; `service`: the droplet a replica part runs) and keep it running. */
  add(name, spec) {
    const part = { name, spec, restarts: [] };
    this.parts.set(name, part);
    this.launch(part);
  }

  /** The pid of a running part (for tests and status lines). */
  pid(name) {
    return this.parts.get(name)?.child?.pid;
  }

  launch(part) {
    const { cmd, args, env } = part.spec;
    // Straight into the log file, not through a pipe: a child whose supervisor died must
    // still be able to log its own shutdown (a write to a dead pipe would kill it first).
    const out = openSync(this.logFile(part.name), 'a');
    const [file, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGKILL', '--', cmd, ...args]] : [cmd, args];
    // Own process group: Ctrl-C reaches only the supervisor, which stops the parts in order.
    const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: true });
    closeSync(out);
    part.child = child;
    child.once('error', (err) => this.o.log(`${part.name} could not start: ${err.message}`));
    child.once('exit', (code, signal) => {
      this.writePids();
      if (this.stopping || part.child !== child) return;
      this.onUnexpectedExit(part, signal ?? `code ${code}`);
    });
    this.writePids();
  }

  onUnexpectedExit(part, how) {
    const now = Date.now();
    part.restarts = part.restarts.filter((t) => now - t < this.o.windowMs);
    if (part.restarts.length >= this.o.maxRestarts) {
      const last = lastLines(this.logFile(part.name), 8).map((l) => `    ${l.slice(0, 300)}`);
      this.o.onGiveUp(
        part.name,
        `${part.name} exited (${how}) ${part.restarts.length + 1} times within ${this.o.windowMs / 1000} s; giving up. Last lines of ${this.logFile(part.name)}:\n${last.join('\n')}`,
      );
      return;
    }
    part.restarts.push(now);
    const delay = Math.min(8000, 250 * 2 ** (part.restarts.length - 1));
    this.o.log(
      `${part.name} exited (${how}); restarting in ${delay} ms (restart ${part.restarts.length} of ${this.o.maxRestarts} within ${this.o.windowMs / 1000} s)`,
    );
    part.timer = setTimeout(() => {
      if (!this.stopping) this.launch(part);
    }, delay);
  }

  /** Stop every part, last started first: SIGTERM, then SIGKILL after graceMs. */
  async stopAll(graceMs = 10_000) {
    this.stopping = true;
    for (const part of [...this.parts.values()].reverse()) {
      clearTimeout(part.timer);
      const child = part.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) continue;
      await new Promise((resolve) => {
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.kill('SIGTERM');
      });
      this.o.log(`stopped ${part.name}`);
    }
    this.writePids();
  }

  /** Last resort when the supervisor exits without stopAll (an uncaught error). */
  killAll() {
    for (const part of this.parts.values()) {
      const c = part.child;
      if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
  }

  pidsFile() {
    return join(this.o.dataDir, 'children.json');
  }

  writePids() {
    const live = [...this.parts.values()]
      .filter((p) => p.child?.pid && p.child.exitCode === null && p.child.signalCode === null)
      .map((p) => ({ name: p.name, pid: p.child.pid, ...(p.spec.service ? { service: p.spec.service } : {}) }));
    writeFileSync(this.pidsFile(), `${JSON.stringify({ supervisor: process.pid, children: live }, null, 2)}\n`);
  }
}

function lastLines(file, n) {
  try {
    const size = statSync(file).size;
    const length = Math.min(size, 16_384);
    const buf = Buffer.alloc(length);
    const fd = openSync(file, 'r');
    readSync(fd, buf, 0, length, size - length);
    closeSync(fd);
    return buf.toString('utf8').split('\n').filter(Boolean).slice(-n);
  } catch {
    return [];
  }
}

const alive = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const cmdline = (pid) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
};

/**
 * Before starting: refuse when another supervisor runs on this DATA_DIR; stop children a
 * previous supervisor left behind (it was killed where no parent-death signal could help).
 * Returns a line saying why start must not go on, or undefined.
 */
export function claimDataDir(dataDir, log) {
  const file = join(dataDir, 'children.json');
  if (!existsSync(file)) return undefined;
  let previous;
  try {
    previous = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  if (
    previous.supervisor &&
    previous.supervisor !== process.pid &&
    alive(previous.supervisor) &&
    /start-mesh/.test(cmdline(previous.supervisor))
  )
    return `another npm start (pid ${previous.supervisor}) is running on ${dataDir}; stop it (Ctrl-C there, or kill ${previous.supervisor}) or set DATA_DIR`;
  for (const c of previous.children ?? []) {
    if (!alive(c.pid)) continue;
    const cmd = cmdline(c.pid);
    // `service`: a droplet's second replica (`deployer-2`) runs services/deployer/.
    if (!(cmd.includes('nats-server') || cmd.includes(`services/${c.service ?? c.name}/`))) continue; // the pid was reused
    log(`stopping ${c.name} (pid ${c.pid}) left behind by a previous npm start`);
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
  return undefined;
}

/** Who listens on a TCP port, as `ss` tells it (empty when unknown). */
export function portHolder(port) {
  const res = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  const m = /users:\(\("([^"]+)",pid=(\d+)/.exec(res.stdout ?? '');
  return m ? ` by ${m[1]} (pid ${m[2]})` : '';
}
