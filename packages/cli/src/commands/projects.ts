import type { Command } from 'commander';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';

const DROPLET = 'deployer';

interface Project {
  name: string;
  description?: string;
  created_at: string;
  services?: string[];
  environments?: string[];
}

const columns: Column<Project>[] = [
  { header: 'NAME', value: (p) => p.name },
  { header: 'DESCRIPTION', value: (p) => p.description },
  { header: 'CREATED', value: (p) => p.created_at.slice(0, 19).replace('T', ' ') },
];

export const projectPath = (project: string) => `/projects/${encodeURIComponent(project)}`;

export function registerProjectCommands(program: Command, { context }: CommandEnv): void {
  const projects = program.command('projects').description("The deployer's projects: each holds services and environments");

  projects
    .command('ls', { isDefault: true })
    .description('Every project')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { items } = await (await ctx.droplet(DROPLET, o.url)).all<Project>('/projects');
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  projects
    .command('create <name>')
    .description('Add a project')
    .option('--description <text>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { description?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const p = await (await ctx.droplet(DROPLET, o.url)).post<Project>('/projects', { name, description: o.description });
      ctx.out.result(p, () => ctx.out.line(`project ${p.name} created`));
    });

  projects
    .command('show <name>')
    .description('One project with its services and environments')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const p = await (await ctx.droplet(DROPLET, o.url)).get<Project>(projectPath(name));
      ctx.out.result(p, () => {
        ctx.out.line(`project ${p.name}${p.description ? ` - ${p.description}` : ''}`);
        ctx.out.line(`services: ${(p.services ?? []).join(', ') || '-'}`);
        ctx.out.line(`environments: ${(p.environments ?? []).join(', ') || '-'}`);
      });
    });

  projects
    .command('rm <name>')
    .description('Delete a project that has no services left')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(projectPath(name));
      ctx.out.result({ deleted: name }, () => ctx.out.line(`project ${name} deleted`));
    });
}
