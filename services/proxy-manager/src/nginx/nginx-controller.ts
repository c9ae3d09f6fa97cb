import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, existsSync, openSync, readSync } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import type { Logger } from '@droplet-mesh/udc-kit';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export interface NginxOptions {
  bin: string;
  prefix: string;
  confFile: string;
  errorLog: string;
  pidFile: string;
  /** Start and supervise the master ourselves (otherwise only test and signal it). */
  manage: boolean;
  reloadTimeoutMs: number;
  logger: Logger;
}

export interface NginxResult {
  ok: boolean;
  /** nginx's own words (stderr of `nginx -t`, or the error-log lines of a reload). */
  output: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The one place that runs nginx: always with -p/-c/-e so nothing outside the prefix is
 * touched. Reloads are SIGHUP to the master (what `nginx -s reload` does, minus a
 * process spawn) and are confirmed from the master's own lines in the error log,
 * because a failed reload is only visible there.
 */
export class NginxController {
  private child: ChildProcess | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private restarts = 0;
  tests = 0;
  reloads = 0;
  lastReload: { ok: boolean; at: string; output?: string } | undefined;
  onUnexpectedExit?: (code: number | null, signal: string | null) => void;

  constructor(private o: NginxOptions) {}

  private args(extra: string[], confFile = this.o.confFile): string[] {
    return ['-p', this.o.prefix, '-c', confFile, '-e', this.o.errorLog, ...extra];
  }

  async binaryPresent(): Promise<boolean> {
    try {
      await access(this.o.bin, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * What `test()` checks by default instead of the running config: a copy of it without the Lua
   * module (main-conf.ts `testOnly`), which includes the same route files. Set at start.
   */
  testConfFile?: string;

  /** `nginx -t` over the whole config on disk (or over another file, e.g. a probe). */
  test(confFile?: string): Promise<NginxResult> {
    this.tests++;
    return new Promise((resolve) => {
      execFile(this.o.bin, this.args(['-t', '-q'], confFile ?? this.testConfFile), { timeout: 30_000 }, (err, _stdout, stderr) => {
        resolve({ ok: !err, output: cleanOutput(String(stderr || (err ? err.message : ''))) });
      });
    });
  }

  async masterPid(): Promise<number | undefined> {
    if (this.child?.pid && this.child.exitCode === null) return this.child.pid;
    try {
      const pid = Number((await readFile(this.o.pidFile, 'utf8')).trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      process.kill(pid, 0);
      return pid;
    } catch {
      return undefined;
    }
  }

  isRunning(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Start the master in the foreground as our child and wait until its workers run. */
  async start(): Promise<void> {
    if (!this.o.manage) return;
    this.stopping = false;
    await this.stopStrayMaster();
    const from = await logSize(this.o.errorLog);
    // Through util-linux's setpriv when there is one: the kernel then stops nginx when this
    // process dies in any way (kill -9 included), so no master outlives it holding the ports.
    const [file, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'SIGTERM', '--', this.o.bin, ...this.args([])]] : [this.o.bin, this.args([])];
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr = (stderr + String(d)).slice(-4000)));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = undefined;
      if (this.stopping) return;
      this.o.logger.error({ code, signal, stderr: stderr.slice(-500) }, 'nginx master exited unexpectedly');
      this.onUnexpectedExit?.(code, signal);
      this.scheduleRestart();
    });
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`nginx failed to start: ${cleanOutput(stderr) || (await newLogText(this.o.errorLog, from))}`);
      const text = await newLogText(this.o.errorLog, from);
      if (text.includes('start worker process')) {
        this.restarts = 0;
        return;
      }
      const emerg = text.split('\n').find((l) => l.includes('[emerg]'));
      if (emerg) throw new Error(`nginx failed to start: ${emerg}`);
      await sleep(20);
    }
    throw new Error('nginx did not start within 10 s');
  }

  private scheduleRestart(): void {
    const delay = Math.min(30_000, 250 * 2 ** this.restarts++);
    this.restartTimer = setTimeout(() => {
      this.start().catch((err) => this.o.logger.error({ err }, 'nginx restart failed'));
    }, delay);
    this.restartTimer.unref();
  }

  /** A master left behind by a previous run of this droplet holds our ports: ask it to quit. */
  private async stopStrayMaster(): Promise<void> {
    const pid = await this.masterPid();
    if (!pid || pid === this.child?.pid) return;
    try {
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('nginx')) return;
      this.o.logger.warn({ pid }, 'stopping an nginx master left from a previous run');
      process.kill(pid, 'SIGQUIT');
      for (let i = 0; i < 100; i++) {
        await sleep(50);
        process.kill(pid, 0);
      }
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }

  /** Reload and report whether the new config was taken (the old keeps serving if not). */
  async reload(): Promise<NginxResult> {
    this.reloads++;
    const pid = await this.masterPid();
    if (!pid) {
      const r = { ok: false, output: 'nginx is not running' };
      this.lastReload = { ok: false, at: new Date().toISOString(), output: r.output };
      return r;
    }
    const from = await logSize(this.o.errorLog);
    const oldWorkers = await childPids(pid);
    process.kill(pid, 'SIGHUP');
    const deadline = Date.now() + this.o.reloadTimeoutMs;
    let result: NginxResult | undefined;
    while (!result && Date.now() < deadline) {
      await sleep(5);
      const lines = (await newLogText(this.o.errorLog, from)).split('\n').filter((l) => l.includes(` ${pid}#`));
      const at = lines.findIndex((l) => l.includes('reconfiguring'));
      if (at < 0) continue;
      const after = lines.slice(at + 1);
      const failed = after.filter((l) => /\[(emerg|alert|crit)\]/.test(l));
      if (failed.length > 0) result = { ok: false, output: failed.map(stripLogPrefix).join('\n') };
      else if (after.some((l) => l.includes('start worker process'))) {
        result = { ok: true, output: '' };
        await this.waitForOldWorkers(oldWorkers, from, deadline);
      }
    }
    result ??= { ok: false, output: `no reload confirmation from nginx within ${this.o.reloadTimeoutMs} ms` };
    this.lastReload = { ok: result.ok, at: new Date().toISOString(), ...(result.ok ? {} : { output: result.output }) };
    return result;
  }

  /**
   * New workers are up, but old ones keep accepting connections with the old config
   * until they act on the master's QUIT. Only after every old worker said so does a
   * request surely meet the new config.
   */
  private async waitForOldWorkers(old: Set<number>, from: number, deadline: number): Promise<void> {
    const pending = new Set(old);
    while (pending.size > 0 && Date.now() < deadline) {
      const text = await newLogText(this.o.errorLog, from);
      for (const pid of [...pending]) {
        if (text.includes(`${pid}#${pid}: gracefully shutting down`) || !alive(pid)) pending.delete(pid);
      }
      if (pending.size > 0) await sleep(2);
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      child.kill('SIGQUIT');
    });
  }
}

/** Processes whose parent is `pid` (the master's workers and cache processes), from /proc. */
async function childPids(pid: number): Promise<Set<number>> {
  const out = new Set<number>();
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      // Field 4 is the parent pid; the command (field 2) may hold spaces, so split after ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.add(Number(entry));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function cleanOutput(s: string): string {
  return s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('\n')
    .slice(0, 4000);
}

function stripLogPrefix(line: string): string {
  return line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d /, '').replace(/\d+#\d+: /, '');
}

async function logSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** What was appended to the error log since `from` (at most 64 KiB). */
async function newLogText(path: string, from: number): Promise<string> {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, from);
    return buf.subarray(0, n).toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
