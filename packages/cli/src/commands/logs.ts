import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CommandEnv } from './command-env.js';
import { positiveInt } from './options.js';

interface LogEntry {
  level: string;
  time: string;
  msg: string;
  [k: string]: unknown;
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
/** Fields every line has, or that say nothing useful on a terminal. */
const COMMON = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'droplet', 'name']);

/** `2026-11-02T10:00:00.000Z INFO  request {"status":200,...}` */
export function logLine(e: LogEntry): string {
  const extra = Object.fromEntries(Object.entries(e).filter(([k]) => !COMMON.has(k)));
  const tail = Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : '';
  return `${e.time} ${String(e.level).toUpperCase().padEnd(5)} ${e.msg}${tail}`.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, ' ');
}

export function registerLogsCommand(program: Command, { context }: CommandEnv): void {
  program
    .command('logs <droplet>')
    .description("A droplet's recent log lines (GET /logs)")
    .option('--level <level>', `at least this level (${LEVELS.join(', ')})`)
    .option('--since <iso-time>', 'only lines at or after this time')
    .option('--limit <n>', 'at most this many lines (1-1000)', positiveInt, 100)
    .option('--url <url>', 'the droplet URL (env MESHCTL_<DROPLET>_URL)')
    .action(async (droplet: string, o: { level?: string; since?: string; limit: number; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(droplet)) throw new CliError('INVALID_REQUEST', `'${droplet}' is not a droplet id`);
      const client = await ctx.droplet(droplet, o.url);
      const body = await client.get<{ logs: LogEntry[]; count: number }>('/logs', { level: o.level, since: o.since, limit: o.limit });
      ctx.out.result(body, () => {
        for (const e of body.logs) ctx.out.line(logLine(e));
      });
    });
}
