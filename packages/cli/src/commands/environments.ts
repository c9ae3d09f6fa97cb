import type { Command } from 'commander';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { keyValue } from './options.js';
import { projectPath } from './projects.js';

const DROPLET = 'deployer';

interface Environment {
  name: string;
  project: string;
  env: Record<string, string>;
  auto_rollback?: boolean;
  created_at: string;
}

const columns: Column<Environment>[] = [
  { header: 'NAME', value: (e) => e.name },
  { header: 'VARIABLES', value: (e) => Object.keys(e.env ?? {}).join(',') },
  { header: 'AUTO ROLLBACK', value: (e) => (e.auto_rollback ? 'yes' : 'no') },
  { header: 'CREATED', value: (e) => e.created_at.slice(0, 19).replace('T', ' ') },
];

const envPath = (project: string, env: string) => `${projectPath(project)}/environments/${encodeURIComponent(env)}`;

export function registerEnvironmentCommands(program: Command, { context }: CommandEnv): void {
  const envs = program.command('environments').alias('envs').description("A project's environments (prod, uat, ...)");

  envs
    .command('ls', { isDefault: true })
    .description("A project's environments")
    .requiredOption('--project <project>')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (o: { project: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { items } = await (await ctx.droplet(DROPLET, o.url)).all<Environment>(`${projectPath(o.project)}/environments`);
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  envs
    .command('create <name>')
    .description('Add an environment; --var sets a plain variable (use `secrets set` for secrets)')
    .requiredOption('--project <project>')
    .option('--var <key=value>', 'repeatable', keyValue)
    .option('--auto-rollback', 'roll back a deploy that fails its health check')
    .option('--url <url>', 'deployer URL')
    .action(
      async (name: string, o: { project: string; var?: Record<string, string>; autoRollback?: boolean; url?: string }, cmd: Command) => {
        const ctx = context(cmd);
        const e = await (await ctx.droplet(DROPLET, o.url)).post<Environment>(`${projectPath(o.project)}/environments`, {
          name,
          env: o.var ?? {},
          ...(o.autoRollback ? { auto_rollback: true } : {}),
        });
        ctx.out.result(e, () => ctx.out.line(`environment ${o.project}/${e.name} created`));
      },
    );

  envs
    .command('rm <name>')
    .description('Delete an environment with nothing deployed in it')
    .requiredOption('--project <project>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(envPath(o.project, name));
      ctx.out.result({ deleted: name, project: o.project }, () => ctx.out.line(`environment ${o.project}/${name} deleted`));
    });

  envs
    .command('promote <from>')
    .description('Run in another environment (default prod) the exact image a service runs in <from>')
    .requiredOption('--project <project>')
    .requiredOption('--service <service>')
    .option('--to <environment>', 'target environment', 'prod')
    .option('--url <url>', 'deployer URL')
    .action(async (from: string, o: { project: string; service: string; to: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await (await ctx.droplet(DROPLET, o.url)).post<{ id: string; status: string }>(
        `/environments/${encodeURIComponent(from)}/promote`,
        { project: o.project, service: o.service, to: o.to },
      );
      ctx.out.result(r, () =>
        ctx.out.line(`deployment ${r.id} ${r.status}: ${o.service} ${from} -> ${o.to} (follow: meshctl deployments show ${r.id})`),
      );
    });
}
