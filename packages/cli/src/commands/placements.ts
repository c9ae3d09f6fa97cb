import { type Command, InvalidArgumentError } from 'commander';
import { ApiError } from '../errors.js';
import type { HttpClient } from '../http.js';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { projectPath } from './projects.js';

const DROPLET = 'deployer';

interface Placement {
  project: string;
  service: string;
  environment: string;
  servers: Array<{ server_id: string; replicas: number }>;
  updated_at: string;
}

const columns: Column<Placement>[] = [
  { header: 'ENVIRONMENT', value: (p) => p.environment },
  { header: 'SERVERS', value: (p) => p.servers.map((s) => `${s.server_id}=${s.replicas}`).join(',') },
  { header: 'UPDATED', value: (p) => p.updated_at.slice(0, 19).replace('T', ' ') },
];

const placementPath = (project: string, service: string, env: string) =>
  `${projectPath(project)}/services/${encodeURIComponent(service)}/placements/${encodeURIComponent(env)}`;

/** `--server ID` or `--server ID=REPLICAS` (one replica when not given), repeatable. */
export function serverReplicas(value: string, previous: Placement['servers'] = []): Placement['servers'] {
  const [id, count, ...rest] = value.split('=');
  const replicas = count === undefined ? 1 : Number(count);
  if (!id || rest.length > 0 || !Number.isInteger(replicas) || replicas < 1)
    throw new InvalidArgumentError('expected SERVER or SERVER=REPLICAS (a positive whole number)');
  return [...previous, { server_id: id, replicas }];
}

/** The placement in one environment, or none (the service then runs on local with its default replicas). */
async function placementIn(http: HttpClient, project: string, service: string, env: string): Promise<Placement | undefined> {
  try {
    return await http.get<Placement>(placementPath(project, service, env));
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus === 404) return undefined;
    throw err;
  }
}

export function registerPlacementCommands(program: Command, { context }: CommandEnv): void {
  const placements = program
    .command('placements')
    .description("Which servers run a service in an environment, with replicas (applies from the service's next deploy)");

  placements
    .command('ls <service>', { isDefault: true })
    .description("A service's placements, in one environment (--env) or in each of its project's environments")
    .requiredOption('--project <project>')
    .option('--env <environment>', 'one environment (default: every environment of the project)')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (service: string, o: { project: string; env?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const http = await ctx.droplet(DROPLET, o.url);
      // The service must exist: a typo is an error, not an empty list.
      await http.get(`${projectPath(o.project)}/services/${encodeURIComponent(service)}`);
      const envs = o.env ? [o.env] : (await http.all<{ name: string }>(`${projectPath(o.project)}/environments`)).items.map((e) => e.name);
      const items: Placement[] = [];
      for (const env of envs) {
        const p = await placementIn(http, o.project, service, env);
        if (p) items.push(p);
      }
      ctx.out.result({ items }, () => {
        if (items.length === 0) ctx.out.line(`no placement: ${service} runs on the local server with its default replicas`);
        else ctx.out.table(columns, items);
      });
    });

  placements
    .command('set <service>')
    .description('Place a service on servers in an environment: --server ID[=REPLICAS], repeatable')
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .requiredOption('--server <id[=replicas]>', 'a registered server (see `meshctl server ls`), repeatable', serverReplicas)
    .option('--url <url>', 'deployer URL')
    .action(async (service: string, o: { project: string; env: string; server: Placement['servers']; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const p = await (await ctx.droplet(DROPLET, o.url)).put<Placement>(placementPath(o.project, service, o.env), { servers: o.server });
      ctx.out.result(p, () =>
        ctx.out.line(
          `${service} in ${o.project}/${o.env} placed on ${p.servers.map((s) => `${s.server_id} (${s.replicas})`).join(', ')} (applies from its next deploy)`,
        ),
      );
    });

  placements
    .command('rm <service>')
    .description("Remove a service's placement in an environment: its next deploy spreads it over the environment's servers again")
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .option('--url <url>', 'deployer URL')
    .action(async (service: string, o: { project: string; env: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(placementPath(o.project, service, o.env));
      ctx.out.result({ deleted: service, project: o.project, environment: o.env }, () =>
        ctx.out.line(`placement of ${service} in ${o.project}/${o.env} removed (applies from its next deploy)`),
      );
    });
}
