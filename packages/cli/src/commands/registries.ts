import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { projectPath } from './projects.js';
import { readStdin } from './secrets.js';

const DROPLET = 'deployer';

interface RegistryCredential {
  host: string;
  /** Shown for a project's credentials only; never the password. */
  username?: string;
  created_at: string;
  updated_at: string;
}

const columns: Column<RegistryCredential>[] = [
  { header: 'HOST', value: (r) => r.host },
  { header: 'USERNAME', value: (r) => r.username ?? '-' },
  { header: 'UPDATED', value: (r) => r.updated_at.slice(0, 19).replace('T', ' ') },
];

/** A project's credentials (tried first by its deploys), or the mesh-wide ones (admin). */
const registriesPath = (project?: string) => (project ? `${projectPath(project)}/registries` : '/registries');
const scopeOf = (project?: string) => (project ? `project ${project}` : 'the whole mesh');

export function registerRegistryCommands(program: Command, { context }: CommandEnv): void {
  const registries = program
    .command('registries')
    .description("Pull credentials for private image registries: a project's (tried first) or mesh-wide (admin); passwords never shown");

  registries
    .command('ls', { isDefault: true })
    .description('Registry hosts with stored credentials (and, for a project, the username)')
    .option('--project <project>', "a project's credentials (default: the mesh-wide ones)")
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (o: { project?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { items } = await (await ctx.droplet(DROPLET, o.url)).get<{ items: RegistryCredential[] }>(registriesPath(o.project));
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  registries
    .command('set <host>')
    .description(
      'Store pull credentials for a registry host; the password is read from stdin (e.g. `printf %s "$PW" | meshctl registries set ghcr.io --username U`)',
    )
    .requiredOption('--username <username>')
    .option('--project <project>', 'for this project only (default: mesh-wide, admin scope)')
    .option('--url <url>', 'deployer URL')
    .action(async (host: string, o: { username: string; project?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const password = await readStdin(process.stdin, (s) => ctx.out.note(s.replace('the value', 'the password')));
      if (!password)
        throw new CliError(
          'INVALID_REQUEST',
          'no password on stdin',
          undefined,
          `printf %s "$PASSWORD" | meshctl registries set ${host} ...`,
        );
      const r = await (await ctx.droplet(DROPLET, o.url)).put<RegistryCredential>(
        `${registriesPath(o.project)}/${encodeURIComponent(host)}`,
        {
          username: o.username,
          password,
        },
      );
      ctx.out.result(r, () => ctx.out.line(`credentials for ${r.host} stored for ${scopeOf(o.project)} (used from the next deploy)`));
    });

  registries
    .command('rm <host>')
    .description("Forget a registry host's credentials")
    .option('--project <project>', "a project's credentials (default: the mesh-wide ones)")
    .option('--url <url>', 'deployer URL')
    .action(async (host: string, o: { project?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(`${registriesPath(o.project)}/${encodeURIComponent(host)}`);
      ctx.out.result({ deleted: host, ...(o.project ? { project: o.project } : {}) }, () =>
        ctx.out.line(`credentials for ${host} forgotten for ${scopeOf(o.project)}`),
      );
    });
}
