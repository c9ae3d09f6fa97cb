import type { Command } from 'commander';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';

const DROPLET = 'health-monitor';

interface Target {
  id: string;
  kind: string;
  url: string;
  status: string;
  open_incident: { id: string } | null;
  last_check: { at: string; ok: boolean; latency_ms: number | null; error: string | null } | null;
  uptime_percent: { '24h': number | null; '7d': number | null };
}

const pct = (v: number | null) => (v === null ? null : `${v}%`);

const columns: Column<Target>[] = [
  { header: 'TARGET', value: (t) => t.id },
  { header: 'KIND', value: (t) => t.kind },
  { header: 'STATUS', value: (t) => t.status },
  { header: 'LAST CHECK', value: (t) => (t.last_check ? `${t.last_check.ok ? 'ok' : (t.last_check.error ?? 'failed')}` : null) },
  { header: 'LATENCY', value: (t) => (t.last_check?.latency_ms != null ? `${t.last_check.latency_ms} ms` : null), align: 'right' },
  { header: 'UP 24H', value: (t) => pct(t.uptime_percent['24h']), align: 'right' },
  { header: 'UP 7D', value: (t) => pct(t.uptime_percent['7d']), align: 'right' },
  { header: 'INCIDENT', value: (t) => t.open_incident?.id },
];

export function registerHealthCommand(program: Command, { context }: CommandEnv): void {
  program
    .command('health')
    .description('What health-monitor checks (droplets, deployed apps, hosts): status, last check, uptime, open incident')
    .option('--url <url>', 'health-monitor URL (env MESHCTL_HEALTH_MONITOR_URL)')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { items } = await (await ctx.droplet(DROPLET, o.url)).all<Target>('/targets');
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });
}
