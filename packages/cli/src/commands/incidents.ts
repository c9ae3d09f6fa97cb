import { type Command, InvalidArgumentError } from 'commander';
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
  acknowledged_at?: string;
  acknowledged_by?: string;
  leader?: string;
  recovery?: { policy: string[]; step_index: number; attempts_total: number; exhausted: boolean };
  timeline?: Array<{ at: string; event: string; by: string; detail?: Record<string, unknown> }>;
}

const columns: Column<Incident>[] = [
  { header: 'ID', value: (i) => i.id },
  { header: 'TARGET', value: (i) => i.target_id },
  { header: 'STATUS', value: (i) => (i.acknowledged_at ? `${i.status} (ack)` : i.status) },
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

  incidents
    .command('ack <id>')
    .description('Acknowledge an open incident: no more notifications about it but its resolution')
    .option('--note <text>', 'a note for the timeline')
    .option('--url <url>', 'health-monitor URL')
    .action(async (id: string, o: { note?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      const i = await hm.post<Incident>(`/incidents/${encodeURIComponent(id)}/ack`, o.note ? { note: o.note } : {});
      ctx.out.result(i, () =>
        ctx.out.line(`incident ${i.id} (${i.target_id}) acknowledged by ${i.acknowledged_by} at ${i.acknowledged_at}`),
      );
    });

  incidents
    .command('silence <id-or-target>')
    .description("No notifications about a target for a while: an incident's id (its target), or with --target any target id")
    .requiredOption('--for <duration>', 'how long: 90s, 30m, 2h, 1d (at most 30d)', parseDuration)
    .option('--target', 'the argument is a target id, not an incident id')
    .option('--reason <text>', 'why (kept with the silence)')
    .option('--url <url>', 'health-monitor URL')
    .action(async (ref: string, o: { for: number; target?: boolean; reason?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      const body = { duration_s: o.for, ...(o.reason ? { reason: o.reason } : {}) };
      const s = o.target
        ? await hm.post<Silence>('/silences', { target_id: ref, ...body })
        : await hm.post<Silence>(`/incidents/${encodeURIComponent(ref)}/silence`, body);
      ctx.out.result(s, () => ctx.out.line(`${s.target_id} silenced until ${s.until}${s.reason ? ` (${s.reason})` : ''}`));
    });

  incidents
    .command('unsilence <target>')
    .description("Lift a target's silence")
    .option('--url <url>', 'health-monitor URL')
    .action(async (targetId: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      await hm.delete(`/silences/${encodeURIComponent(targetId)}`);
      ctx.out.result({ target_id: targetId, silenced: false }, () => ctx.out.line(`${targetId} no longer silenced`));
    });

  incidents
    .command('silences')
    .description('Silenced targets and until when')
    .option('--url <url>', 'health-monitor URL')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      const body = await hm.get<{ items: Silence[] }>('/silences');
      ctx.out.result(body, () =>
        ctx.out.table(
          [
            { header: 'TARGET', value: (s: Silence) => s.target_id },
            { header: 'UNTIL', value: (s) => s.until },
            { header: 'BY', value: (s) => s.by },
            { header: 'REASON', value: (s) => s.reason ?? null },
          ],
          body.items,
        ),
      );
    });

  incidents
    .command('recover <id>')
    .description('Run a recovery step now (restart through the deployer, reboot through multi-cloud-manager)')
    .option('--step <step>', 'restart or reboot (default: the first of its policy that applies)')
    .option('--resume', 'start the automatic recovery policy over afterwards')
    .option('--url <url>', 'health-monitor URL')
    .action(async (id: string, o: { step?: string; resume?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const hm = await ctx.droplet(DROPLET, o.url);
      const r = await hm.post<{ incident: Incident; step: string; result: string }>(`/incidents/${encodeURIComponent(id)}/recover`, {
        ...(o.step ? { step: o.step } : {}),
        ...(o.resume ? { resume: true } : {}),
      });
      ctx.out.result(r, () => ctx.out.line(`${r.step} of ${r.incident.target_id} ${r.result} (incident ${r.incident.id})`));
    });
}

interface Silence {
  target_id: string;
  until: string;
  by: string;
  reason?: string;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `30m`, `2h`, `1d` (or plain seconds) as seconds. */
export function parseDuration(value: string): number {
  const m = /^(\d{1,7})([smhd]?)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('expected a duration like 90s, 30m, 2h or 1d');
  const seconds = Number(m[1]) * UNITS[m[2] || 's'];
  if (seconds < 1 || seconds > 30 * 86400) throw new InvalidArgumentError('must be between 1s and 30d');
  return seconds;
}
