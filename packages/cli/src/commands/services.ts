import { type Command, InvalidArgumentError } from 'commander';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { positiveInt } from './options.js';
import { projectPath } from './projects.js';

const DROPLET = 'deployer';

interface Service {
  name: string;
  project: string;
  type: 'web' | 'worker';
  domain?: string;
  https?: boolean;
  replicas: number;
  health_path?: string;
}

interface Release {
  target_id: string;
  deployment_id?: string;
  image?: string;
  containers?: Array<{ container_id?: string; port?: number; server_id?: string; address?: string }>;
}

const columns: Column<Service>[] = [
  { header: 'NAME', value: (s) => s.name },
  { header: 'TYPE', value: (s) => s.type },
  { header: 'DOMAIN', value: (s) => s.domain },
  { header: 'HTTPS', value: (s) => (s.https ? 'yes' : s.domain ? 'no' : null) },
  { header: 'REPLICAS', value: (s) => s.replicas, align: 'right' },
];

/** The deployer's id of what runs a service in an environment. */
export const targetId = (project: string, service: string, env: string) => `app-${project}-${service}-${env}`;
const servicePath = (project: string, service: string) => `${projectPath(project)}/services/${encodeURIComponent(service)}`;

function serviceType(v: string): 'web' | 'worker' {
  if (v !== 'web' && v !== 'worker') throw new InvalidArgumentError('web or worker');
  return v;
}

export function registerServiceCommands(program: Command, { context }: CommandEnv): void {
  const services = program.command('services').description("A project's services and what runs them");

  services
    .command('ls', { isDefault: true })
    .description("A project's services")
    .requiredOption('--project <project>')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (o: { project: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { items } = await (await ctx.droplet(DROPLET, o.url)).all<Service>(`${projectPath(o.project)}/services`);
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  services
    .command('create <name>')
    .description('Add a service; a web service with --domain gets a route on deploy (--https: with a certificate)')
    .requiredOption('--project <project>')
    .option('--type <type>', 'web or worker', serviceType, 'web')
    .option('--domain <domain>', 'public domain routed through proxy-manager')
    .option('--https', 'obtain a certificate with the route and redirect HTTP to HTTPS')
    .option('--health-path <path>', 'checked before traffic switches', '/health')
    .option('--replicas <n>', 'containers per environment', positiveInt)
    .option('--command <cmd>', "overrides the image's command (runs through /bin/sh -c)")
    .option('--url <url>', 'deployer URL')
    .action(
      async (
        name: string,
        o: {
          project: string;
          type: 'web' | 'worker';
          domain?: string;
          https?: boolean;
          healthPath: string;
          replicas?: number;
          command?: string;
          url?: string;
        },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        const s = await (await ctx.droplet(DROPLET, o.url)).post<Service>(`${projectPath(o.project)}/services`, {
          name,
          type: o.type,
          health_path: o.healthPath,
          ...(o.domain ? { domain: o.domain } : {}),
          ...(o.https ? { https: true } : {}),
          ...(o.replicas ? { replicas: o.replicas } : {}),
          ...(o.command ? { command: o.command } : {}),
        });
        ctx.out.result(s, () => ctx.out.line(`service ${o.project}/${s.name} created (${s.type}${s.domain ? `, ${s.domain}` : ''})`));
      },
    );

  services
    .command('show <name>')
    .description('One service; with --env, what runs it there (image, containers, ports)')
    .requiredOption('--project <project>')
    .option('--env <environment>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; env?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const service = await deployer.get<Service>(servicePath(o.project, name));
      const release = o.env ? await deployer.get<Release>(`/services/${targetId(o.project, name, o.env)}`) : undefined;
      ctx.out.result({ service, ...(release ? { release } : {}) }, () => {
        ctx.out.table(columns, [service]);
        if (release) {
          ctx.out.line();
          ctx.out.line(
            `${release.target_id}: ${release.image ?? 'nothing deployed'}${release.deployment_id ? ` (deployment ${release.deployment_id})` : ''}`,
          );
          for (const c of release.containers ?? [])
            ctx.out.line(
              `  container ${c.container_id?.slice(0, 12) ?? '-'} on ${c.server_id ?? 'local'} at ${c.address ?? '-'}:${c.port ?? '-'}`,
            );
        }
      });
    });

  services
    .command('rm <name>')
    .description('Delete a service with nothing deployed (see `meshctl undeploy`)')
    .requiredOption('--project <project>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(servicePath(o.project, name));
      ctx.out.result({ deleted: name, project: o.project }, () => ctx.out.line(`service ${o.project}/${name} deleted`));
    });

  services
    .command('scale <name>')
    .description('Set the replicas of a service in an environment and roll its current image out at that size')
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .requiredOption('--replicas <n>', 'how many containers', positiveInt)
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; env: string; replicas: number; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await (await ctx.droplet(DROPLET, o.url)).post<{ id: string; status: string }>(
        `/services/${targetId(o.project, name, o.env)}/scale`,
        { replicas: o.replicas },
      );
      ctx.out.result(r, () => ctx.out.line(`deployment ${r.id} ${r.status}: ${name} in ${o.env} to ${o.replicas} replica(s)`));
    });

  services
    .command('restart <name>')
    .description('Restart the containers of a service in an environment; returns when healthy again')
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; env: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const r = await (await ctx.droplet(DROPLET, o.url)).post(`/services/${targetId(o.project, name, o.env)}/restart`);
      ctx.out.result(r, () => ctx.out.line(`${name} restarted in ${o.env}`));
    });
}
