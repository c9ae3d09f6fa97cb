import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { openBackup, sealBackup } from '../backup-file.js';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import type { CommandEnv } from './command-env.js';

/**
 * The droplets that hold mesh state, in restore order: the registry first (its key ring
 * verifies the rest), the droplets others depend on before their dependants.
 */
export const STATE_DROPLETS = ['registry', 'deployer', 'proxy-manager', 'health-monitor', 'orchestrator'] as const;
const FORMAT = 'droplet-mesh-backup/1';
const PASSPHRASE_ENV = 'MESHCTL_BACKUP_PASSPHRASE';

interface BucketDump {
  format: string;
  droplet: string;
  created_at: string;
  buckets: Array<{ name: string; entries: Array<{ key: string; value: string }> }>;
}
interface MeshBackup {
  format: typeof FORMAT;
  created_at: string;
  droplets: BucketDump[];
}

/** --passphrase-file (first line), else MESHCTL_BACKUP_PASSPHRASE; never an argument (it would sit in shell history). */
async function passphrase(ctx: Context, file?: string): Promise<string> {
  if (file) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new CliError('INVALID_REQUEST', `cannot read the passphrase file ${file} (${err.code ?? 'error'})`);
    });
    return text.split(/\r?\n/)[0];
  }
  const fromEnv = ctx.env[PASSPHRASE_ENV];
  if (fromEnv) return fromEnv;
  throw new CliError('INVALID_REQUEST', 'no passphrase', undefined, `pass --passphrase-file FILE or set ${PASSPHRASE_ENV}`);
}

/** The URL of a state droplet, or undefined when the mesh does not run it (said on stderr). */
async function urlOf(ctx: Context, id: string): Promise<string | undefined> {
  try {
    return await ctx.dropletUrl(id);
  } catch (err) {
    if (err instanceof CliError && err.code === 'NOT_FOUND') {
      ctx.out.note(`${id}: not registered, left out`);
      return undefined;
    }
    throw err;
  }
}

const entryCount = (d: BucketDump) => d.buckets.reduce((n, b) => n + b.entries.length, 0);

export function registerBackupCommands(program: Command, { context }: CommandEnv): void {
  program
    .command('backup')
    .description("Write every droplet's state (KV buckets, sealed values kept sealed) to one encrypted file (AES-256-GCM, scrypt)")
    .requiredOption('-o, --output <file>', 'where to write the backup (created with mode 0600)')
    .option('--passphrase-file <file>', `passphrase on its first line (or env ${PASSPHRASE_ENV})`)
    .action(async (o: { output: string; passphraseFile?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const secret = await passphrase(ctx, o.passphraseFile);
      const droplets: BucketDump[] = [];
      for (const id of STATE_DROPLETS) {
        const url = await urlOf(ctx, id);
        if (!url) continue;
        const dump = await ctx.client(id, url, await ctx.token()).get<BucketDump>('/admin/backup');
        ctx.out.note(`${id}: ${dump.buckets.length} bucket(s), ${entryCount(dump)} key(s)`);
        droplets.push(dump);
      }
      const backup: MeshBackup = { format: FORMAT, created_at: new Date().toISOString(), droplets };
      await writeFile(o.output, await sealBackup(backup, secret), { mode: 0o600 });
      const summary = droplets.map((d) => ({ droplet: d.droplet, buckets: d.buckets.length, keys: entryCount(d) }));
      ctx.out.result({ file: o.output, created_at: backup.created_at, droplets: summary }, () =>
        ctx.out.line(`backup written to ${o.output} (${summary.length} droplets)`),
      );
    });

  program
    .command('restore <file>')
    .description('Put a backup into a mesh: each droplet refuses buckets that already hold state unless --force')
    .option('--passphrase-file <file>', `passphrase on its first line (or env ${PASSPHRASE_ENV})`)
    .option('--force', 'overwrite keys in buckets that already hold state (keys the backup lacks stay)')
    .action(async (file: string, o: { passphraseFile?: string; force?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const secret = await passphrase(ctx, o.passphraseFile);
      const raw = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        throw new CliError('INVALID_REQUEST', `cannot read ${file} (${err.code ?? 'error'})`);
      });
      const backup = (await openBackup(raw, secret)) as MeshBackup;
      if (backup?.format !== FORMAT || !Array.isArray(backup.droplets))
        throw new CliError('INVALID_REQUEST', `${file} is not a ${FORMAT} backup`);
      const order = (d: BucketDump) => STATE_DROPLETS.indexOf(d.droplet as (typeof STATE_DROPLETS)[number]);
      const targets = [];
      for (const dump of [...backup.droplets].sort((x, y) => order(x) - order(y)))
        targets.push({ dump, client: ctx.client(dump.droplet, await ctx.dropletUrl(dump.droplet), await ctx.token()) });
      // Every droplet checks first (dry run), so a refusal leaves the whole mesh untouched.
      for (const { dump, client } of targets) await client.post('/admin/restore', { ...dump, force: !!o.force, dry_run: true });
      const results: unknown[] = [];
      for (const { dump, client } of targets) {
        const r = await client.post<{ buckets: Array<{ name: string; restored: number }> }>('/admin/restore', {
          ...dump,
          force: !!o.force,
        });
        ctx.out.note(`${dump.droplet}: ${r.buckets.map((b) => `${b.name} ${b.restored}`).join(', ') || 'nothing to restore'}`);
        results.push({ droplet: dump.droplet, buckets: r.buckets });
      }
      ctx.out.result({ restored: results, backup_created_at: backup.created_at }, () =>
        ctx.out.line(`restored ${results.length} droplets from the backup of ${backup.created_at}`),
      );
    });
}
