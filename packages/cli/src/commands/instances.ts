import { readFile } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { CliError } from '../errors.js';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { collect, keyValue } from './options.js';

const DROPLET = 'multi-cloud-manager';
export const PROVIDERS = ['digitalocean', 'hetzner', 'vultr', 'local'] as const;
const POWER = {
  on: 'power_on',
  off: 'power_off',
  power_on: 'power_on',
  power_off: 'power_off',
  shutdown: 'shutdown',
  reboot: 'reboot',
} as const;

interface Instance {
  id: string;
  provider: string;
  provider_id: string;
  name: string;
  status: string;
  ipv4: string | null;
  region: string | null;
  size: string | null;
  image: string | null;
  managed: boolean;
  price_monthly: number | null;
}

interface ProviderReport {
  provider: string;
  status: 'ok' | 'error' | 'not_configured';
  error?: { code: string; message: string };
}

const columns: Column<Instance>[] = [
  { header: 'ID', value: (i) => i.id },
  { header: 'NAME', value: (i) => i.name },
  { header: 'STATUS', value: (i) => i.status },
  { header: 'IPV4', value: (i) => i.ipv4 },
  { header: 'REGION', value: (i) => i.region },
  { header: 'SIZE', value: (i) => i.size },
  { header: 'IMAGE', value: (i) => i.image },
  { header: 'MANAGED', value: (i) => (i.managed ? 'yes' : 'no') },
];

/** `local:3f2a...` → provider and the provider's own id. */
export function parseInstanceId(value: string): { provider: string; id: string } {
  const i = value.indexOf(':');
  const provider = value.slice(0, i);
  const id = value.slice(i + 1);
  if (i <= 0 || !id || !(PROVIDERS as readonly string[]).includes(provider)) {
    throw new CliError(
      'INVALID_REQUEST',
      `'${value}' is not an instance id: expected <provider>:<id> with provider one of ${PROVIDERS.join(', ')}`,
    );
  }
  return { provider, id };
}

function provider(value: string): string {
  if (!(PROVIDERS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${PROVIDERS.join(', ')}`);
  return value;
}

export function registerInstanceCommands(program: Command, { context }: CommandEnv): void {
  const instances = program.command('instances').description('Cloud instances through multi-cloud-manager');

  instances
    .command('ls', { isDefault: true })
    .description('Instances on every configured provider')
    .option('--provider <name>', `only this provider (${PROVIDERS.join(', ')})`, provider)
    .option('--status <status>', 'provisioning, running, off, deleting, error, unknown')
    .option('--region <region>')
    .option('--tag <tag>')
    .option('--name <name>')
    .option('--url <url>', 'multi-cloud-manager URL (env MESHCTL_MULTI_CLOUD_MANAGER_URL)')
    .action(async (o: { provider?: string; status?: string; region?: string; tag?: string; name?: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const mcm = await ctx.droplet(DROPLET, o.url);
      const { items, first } = await mcm.all<Instance>('/instances', {
        provider: o.provider,
        status: o.status,
        region: o.region,
        tag: o.tag,
        name: o.name,
      });
      const providers = (first.providers ?? []) as ProviderReport[];
      ctx.out.result({ items, providers }, () => {
        ctx.out.table(columns, items);
        for (const p of providers)
          if (p.status === 'error')
            ctx.out.note(`warning: ${p.provider}: ${p.error?.code}: ${p.error?.message} (its instances are missing above)`);
      });
    });

  instances
    .command('create <name>')
    .description('Create an instance')
    .requiredOption('--provider <name>', PROVIDERS.join(', '), provider)
    .requiredOption('--region <region>')
    .requiredOption('--size <size>')
    .requiredOption('--image <image>')
    .option('--tag <tag>', 'repeatable', collect)
    .option('--label <key=value>', 'repeatable', keyValue)
    .option('--ssh-key <key>', 'repeatable', collect)
    .option('--user-data-file <path>', 'cloud-init user data')
    .option('--wait', 'answer once it runs')
    .option('--idempotency-key <key>', 'repeat a create safely: the same key answers with the first result')
    .option('--url <url>', 'multi-cloud-manager URL')
    .action(
      async (
        name: string,
        o: {
          provider: string;
          region: string;
          size: string;
          image: string;
          tag?: string[];
          label?: Record<string, string>;
          sshKey?: string[];
          userDataFile?: string;
          wait?: boolean;
          idempotencyKey?: string;
          url?: string;
        },
        cmd: Command,
      ) => {
        const ctx = context(cmd);
        let userData: string | undefined;
        if (o.userDataFile) {
          try {
            userData = await readFile(o.userDataFile, 'utf8');
          } catch (err) {
            throw new CliError(
              'INVALID_REQUEST',
              `cannot read ${o.userDataFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
            );
          }
        }
        const mcm = await ctx.droplet(DROPLET, o.url);
        const res = await mcm.send<{ instance: Instance; registered?: boolean; wait_error?: { code: string; message: string } }>(
          'POST',
          '/instances',
          {
            body: {
              provider: o.provider,
              name,
              region: o.region,
              size: o.size,
              image: o.image,
              tags: o.tag ?? [],
              labels: o.label ?? {},
              ...(o.sshKey ? { ssh_keys: o.sshKey } : {}),
              ...(userData !== undefined ? { user_data: userData } : {}),
              wait: !!o.wait,
            },
            headers: o.idempotencyKey ? { 'Idempotency-Key': o.idempotencyKey } : {},
          },
        );
        ctx.out.result(res.body, () => {
          const i = res.body.instance;
          ctx.out.line(
            `${res.status === 201 ? 'created' : 'creating'} ${i.id} (${i.name}): ${i.status}${i.ipv4 ? `, ${i.ipv4}` : ''}${res.body.registered ? ', registered as a host' : ''}`,
          );
          if (res.body.wait_error) ctx.out.note(`warning: ${res.body.wait_error.code}: ${res.body.wait_error.message}`);
        });
      },
    );

  instances
    .command('rm <provider:id>')
    .description('Delete an instance')
    .option('--force', 'also one not created by droplet-mesh')
    .option('--url <url>', 'multi-cloud-manager URL')
    .action(async (ref: string, o: { force?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { provider: p, id } = parseInstanceId(ref);
      const mcm = await ctx.droplet(DROPLET, o.url);
      const body = await mcm.delete<{ instance: Instance }>(`/instances/${encodeURIComponent(p)}/${encodeURIComponent(id)}`, {
        force: o.force ? 'true' : undefined,
      });
      ctx.out.result(body, () => ctx.out.line(`deleted ${body.instance?.id ?? ref}`));
    });

  instances
    .command('power <provider:id> <action>')
    .description('on, off, shutdown or reboot')
    .option('--wait', 'answer once the action completes')
    .option('--force', 'power off or shut down one not created by droplet-mesh')
    .option('--url <url>', 'multi-cloud-manager URL')
    .action(async (ref: string, action: string, o: { wait?: boolean; force?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { provider: p, id } = parseInstanceId(ref);
      const type = POWER[action as keyof typeof POWER];
      if (!type) throw new CliError('INVALID_REQUEST', `unknown power action '${action}': use on, off, shutdown or reboot`);
      const mcm = await ctx.droplet(DROPLET, o.url);
      const body = await mcm.post<{ action: { type: string; status: string }; instance?: Instance }>(
        `/instances/${encodeURIComponent(p)}/${encodeURIComponent(id)}/actions`,
        { type, wait: !!o.wait, force: !!o.force },
      );
      ctx.out.result(body, () =>
        ctx.out.line(`${type} on ${ref}: ${body.action.status}${body.instance ? ` (instance ${body.instance.status})` : ''}`),
      );
    });
}
