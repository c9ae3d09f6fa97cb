import type { Command } from 'commander';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { parseInstanceId } from './instances.js';

const DROPLET = 'multi-cloud-manager';

interface Snapshot {
  id: string;
  provider: string;
  name: string;
  status: string;
  size_gb: number | null;
  created_at: string | null;
  resource_id: string | null;
}

const columns: Column<Snapshot>[] = [
  { header: 'PROVIDER', value: (s) => s.provider },
  { header: 'ID', value: (s) => s.id },
  { header: 'NAME', value: (s) => s.name },
  { header: 'STATUS', value: (s) => s.status },
  { header: 'SIZE GB', value: (s) => s.size_gb, align: 'right' },
  { header: 'CREATED', value: (s) => s.created_at?.slice(0, 19).replace('T', ' ') },
];

export function registerSnapshotCommands(program: Command, { context }: CommandEnv): void {
  const snapshots = program.command('snapshots').description('Instance snapshots through multi-cloud-manager');

  snapshots
    .command('ls', { isDefault: true })
    .description('Snapshots on every provider (or one)')
    .option('--provider <provider>')
    .option('--url <url>', 'multi-cloud-manager URL (env MESHCTL_MULTI_CLOUD_MANAGER_URL)')
    .action(async (o: { provider?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const body = await (await ctx.droplet(DROPLET, o.url)).get<{ snapshots: Snapshot[]; providers: unknown[] }>('/snapshots', {
        provider: o.provider,
      });
      ctx.out.result(body, () => ctx.out.table(columns, body.snapshots));
    });

  snapshots
    .command('create <provider:id>')
    .description('Snapshot an instance')
    .requiredOption('--name <name>')
    .option('--wait', 'answer once the provider finished the snapshot')
    .option('--url <url>', 'multi-cloud-manager URL')
    .action(async (ref: string, o: { name: string; wait?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { provider, id } = parseInstanceId(ref);
      const r = await (await ctx.droplet(DROPLET, o.url)).post<{ snapshot: Snapshot | null; action: { status: string } | null }>(
        `/instances/${encodeURIComponent(provider)}/${encodeURIComponent(id)}/snapshots`,
        { name: o.name, wait: !!o.wait },
      );
      ctx.out.result(r, () =>
        ctx.out.line(
          `snapshot of ${ref}: ${r.snapshot ? `${r.snapshot.id} ${r.snapshot.status}` : `action ${r.action?.status ?? 'requested'}`}`,
        ),
      );
    });
}
