import type { Command } from 'commander';
import { age, type Column } from '../table.js';
import type { CommandEnv } from './command-env.js';

const DROPLET = 'health-monitor';

interface Incident {
  id: string;
  target_id: string;
  status: string;
  reason: string;
  opened_at: string;
  resolved_at?: string;
  leader?: string;
  recovery?: { policy: string[]; step_index: number; attempts_total: number; exhausted: boolean };
  timeline?: Array<{ at: string; event: string; by: string; detail?: Record<string, unknown> }>;
}

const columns: Column<Incident>[] = [
  { header: 'ID', value: (i) => i.id },
  { header: 'TARGET', value: (i) => i.target_id },
  { header: 'STATUS', value: (i) => i.status },
  { header: 'OPENED', value: (i) => age(i.opened_at) },
  { header: 'RESOLVED', value: (i) => (i.resolved_at ? age(i.resolved_at) : null) },
  {
    header: 'RECOVERY',
    value: (i) =>
      i.recovery
        ? `${i.recovery.policy[i.recovery.step_index] ?? 'done'} (${i.recovery.attempts_total} tries${i.recovery.exhausted ? ', exhausted' : ''})`
        : null,
  },
  { header: 'REASON', value: (i) => i.reason },
];

export function registerIncidentCommands(program: Command, { context }: CommandEnv): void {
  const incidents = program.command('incidents').description('Incidents from health-monitor');

  incidents
    .command('ls', { isDefault: true })
    .description('Incidents, newest first')
    .option('--status <status>', 'open, recovering, resolved, or active (open or recovering)')
    .option('--target <id>', 'only this target')
    .option('--url <url>', 'health-monitor URL (env MESHCTL_HEALTH_MONITOR_URL)')
    .action(async (o: { status?: string; target?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      const { items } = await hm.all<Incident>('/incidents', { status: o.status, target_id: o.target });
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  incidents
    .command('show <id>')
    .description('One incident with its timeline')
    .option('--url <url>', 'health-monitor URL')
    .action(async (id: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      const i = await hm.get<Incident>(`/incidents/${encodeURIComponent(id)}`);
      ctx.out.result(i, () => {
        ctx.out.line(`incident ${i.id}: ${i.target_id} ${i.status}`);
        ctx.out.line(`reason: ${i.reason}`);
        ctx.out.line(
          `opened: ${i.opened_at}${i.resolved_at ? `  resolved: ${i.resolved_at}` : ''}${i.leader ? `  leader: ${i.leader}` : ''}`,
        );
        if (i.timeline?.length) {
          ctx.out.line();
          ctx.out.table(
            [
              { header: 'AT', value: (t: NonNullable<Incident['timeline']>[number]) => t.at },
              { header: 'EVENT', value: (t) => t.event },
              { header: 'BY', value: (t) => t.by },
              { header: 'DETAIL', value: (t) => (t.detail ? JSON.stringify(t.detail) : null) },
            ],
            i.timeline,
          );
        }
      });
    });
}
