// `meshctl server add|list|drain|remove`: the deployer's servers. `add` provisions one in a
// single call (multi-cloud-manager creates the machine, it reports back, it is registered)
// and follows its progress until it is ready or failed.
import { type Command, InvalidArgumentError } from 'commander';
import { ApiError, CliError } from '../errors.js';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { PROVIDERS } from './instances.js';

const DROPLET = 'deployer';

interface ServerRow {
  id: string;
  docker_host?: string;
  address?: string;
  environments?: string[];
  draining?: boolean;
  tls?: boolean;
  /** Set while it is being provisioned. */
  provisioning?: boolean;
  status?: string;
  reason?: string;
  steps?: Array<{ at: string; status: string; message: string }>;
}

interface Move {
  target_id: string;
  deployment_id?: string;
  skipped?: string;
}

const columns: Column<ServerRow>[] = [
  { header: 'ID', value: (s) => s.id },
  { header: 'ENGINE', value: (s) => s.docker_host ?? '' },
  { header: 'ADDRESS', value: (s) => s.address ?? '' },
  { header: 'ENVIRONMENTS', value: (s) => (s.environments ?? []).join(',') },
  { header: 'STATE', value: (s) => (s.draining ? 'draining' : 'active') },
];

function providerName(value: string): string {
  if (!(PROVIDERS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${PROVIDERS.join(', ')}`);
  return value;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number of seconds');
  return n;
}

const FINAL = new Set(['ready', 'failed', 'expired']);

export function registerServerProvisionCommands(program: Command, { context }: CommandEnv): void {
  const server = program.command('server').alias('servers').description("The deployer's servers: Docker Engines apps are placed on");

  server
    .command('add <name>')
    .description(
      'Provision a server in one call: multi-cloud-manager creates the machine, it reports its engine ready, the deployer registers it',
    )
    .requiredOption('--provider <name>', PROVIDERS.join(', '), providerName)
    .requiredOption('--region <region>', "e.g. nyc3, fsn1, ewr ('local' for the local provider)")
    .requiredOption('--size <size>')
    .option('--image <image>', 'machine image (default: Debian 12 of that cloud)')
    .option(
      '--env <environment>',
      'environments whose replicas it takes (<env> or <project>/<env>), repeatable',
      (v: string, acc: string[] = []) => [...acc, v],
    )
    .option('--no-wait', 'answer at once; follow with `meshctl server list`')
    .option('--timeout <seconds>', 'stop following after this long (the provisioning goes on)', seconds, 1200)
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(
      async (
        name: string,
        o: { provider: string; region: string; size: string; image?: string; env?: string[]; wait: boolean; timeout: number; url?: string },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        const deployer = await ctx.droplet(DROPLET, o.url);
        let state = await deployer.post<ServerRow>('/servers/provision', {
          name,
          provider: o.provider,
          region: o.region,
          size: o.size,
          ...(o.image ? { image: o.image } : {}),
          ...(o.env?.length ? { environments: o.env } : {}),
        });
        let shown = 0;
        const progress = (s: ServerRow) => {
          for (const step of (s.steps ?? []).slice(shown)) ctx.out.note(`${step.at}  ${step.status}: ${step.message}`);
          shown = Math.max(shown, s.steps?.length ?? 0);
        };
        progress(state);
        const deadline = Date.now() + o.timeout * 1000;
        while (o.wait && state.provisioning !== false && !FINAL.has(state.status ?? '') && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 1000));
          const now = await deployer.get<ServerRow>(`/servers/${encodeURIComponent(name)}`);
          if (!now.provisioning) {
            // Registered: its provisioning record has the last steps.
            progress(await deployer.get<ServerRow>(`/servers/provision/${encodeURIComponent(name)}`));
            state = { ...now, status: 'ready', provisioning: false };
            break;
          }
          state = now;
          progress(state);
        }
        if (state.status === 'failed' || state.status === 'expired')
          throw new CliError('DEPENDENCY_UNAVAILABLE', `server ${name} was not provisioned: ${state.reason ?? state.status}`);
        ctx.out.result(state, () => {
          if (state.status === 'ready') ctx.out.line(`server ${name} ready: ${state.docker_host} (mutual TLS)`);
          else ctx.out.line(`server ${name}: ${state.status}; follow with \`meshctl server list\``);
        });
      },
    );

  server
    .command('list', { isDefault: true })
    .alias('ls')
    .description('Servers: engine, address, environments, draining')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const { items } = await deployer.all<ServerRow>('/servers');
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  server
    .command('drain <name>')
    .description("Move every replica off a server onto its environments' other servers, and place nothing new there")
    .option('--undo', 'take it back for the next deploys')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (name: string, o: { undo?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const body = await deployer.post<{ server: ServerRow; moves: Move[] }>(`/servers/${encodeURIComponent(name)}/drain`, {
        draining: !o.undo,
      });
      ctx.out.result(body, () => {
        ctx.out.line(o.undo ? `server ${name} takes replicas again` : `server ${name} draining`);
        for (const m of body.moves)
          ctx.out.line(
            m.deployment_id ? `  ${m.target_id}: moving (deployment ${m.deployment_id})` : `  ${m.target_id}: not moved: ${m.skipped}`,
          );
      });
    });

  server
    .command('remove <name>')
    .alias('rm')
    .description('Remove a server: one running services is drained first (its replicas moved), then removed; follows until it is gone')
    .option('--no-wait', 'answer once the drain has started; follow with `meshctl server list`')
    .option('--timeout <seconds>', 'stop following after this long (the removal goes on)', seconds, 600)
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (name: string, o: { wait: boolean; timeout: number; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const path = `/servers/${encodeURIComponent(name)}`;
      const started = await deployer.delete<{ moves?: Move[] } | undefined>(path);
      if (started?.moves) {
        ctx.out.note(`server ${name} draining before removal`);
        for (const m of started.moves)
          ctx.out.note(
            m.deployment_id ? `  ${m.target_id}: moving (deployment ${m.deployment_id})` : `  ${m.target_id}: not moved: ${m.skipped}`,
          );
        if (!o.wait) {
          ctx.out.result({ removing: name, moves: started.moves }, () => ctx.out.line(`server ${name} is being removed`));
          return;
        }
        const deadline = Date.now() + o.timeout * 1000;
        for (;;) {
          if (Date.now() > deadline)
            throw new CliError(
              'TIMEOUT',
              `server ${name} is still being removed after ${o.timeout} s; follow with \`meshctl server list\``,
            );
          await new Promise((r) => setTimeout(r, 1000));
          const now = await deployer.get<ServerRow & { removal?: { status: string; reason?: string } }>(path).catch((err: unknown) => {
            if (err instanceof ApiError && err.httpStatus === 404) return undefined;
            throw err;
          });
          if (!now) break;
          if (now.removal?.status === 'failed')
            throw new CliError('CONFLICT', `server ${name} was drained but not removed: ${now.removal.reason ?? 'see the deployer'}`);
        }
      }
      ctx.out.result({ removed: name }, () => ctx.out.line(`server ${name} removed`));
    });
}
