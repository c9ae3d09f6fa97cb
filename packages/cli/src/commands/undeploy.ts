import type { Command } from 'commander';
import type { CommandEnv } from './command-env.js';

const DROPLET = 'deployer';

interface Undeployed {
  target_id: string;
  environment: string;
  deployment_id: string;
  image: string;
  containers_removed: string[];
  route: 'deleted' | 'absent' | 'none';
  registry: 'removed' | 'absent' | 'skipped';
}

export function registerUndeployCommand(program: Command, { context }: CommandEnv): void {
  program
    .command('undeploy <service>')
    .description(
      'Take a service out of an environment (default: every one it runs in): its route, containers, registry record and release go; its deployment history stays',
    )
    .requiredOption('--project <project>', 'the project')
    .option('--env <environment>', 'only this environment')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (service: string, o: { project: string; env?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const body = await deployer.delete<{ undeployed: Undeployed[] }>(
        `/projects/${encodeURIComponent(o.project)}/services/${encodeURIComponent(service)}/deployment`,
        { environment: o.env },
      );
      ctx.out.result(body, () => {
        for (const u of body.undeployed) {
          const route = u.route === 'deleted' ? 'route deleted' : u.route === 'absent' ? 'route already gone' : 'no route';
          const registry =
            u.registry === 'removed' ? 'registry record removed' : u.registry === 'absent' ? 'no registry record' : 'registry not changed';
          ctx.out.line(
            `undeployed ${u.target_id} (${u.image}, deployment ${u.deployment_id}): ${u.containers_removed.length} container(s) removed, ${route}, ${registry}; history kept`,
          );
        }
      });
    });
}
