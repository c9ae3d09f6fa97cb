import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { CommandEnv } from './command-env.js';
import { projectPath } from './projects.js';

const DROPLET = 'deployer';

const secretsPath = (project: string, env: string) => `${projectPath(project)}/environments/${encodeURIComponent(env)}/secrets`;

/** The value from stdin (one trailing newline dropped): an argument would sit in shell history and `ps`. */
export async function readStdin(stdin: NodeJS.ReadableStream & { isTTY?: boolean }, note: (s: string) => void): Promise<string> {
  if (stdin.isTTY) note('type the value, then Ctrl-D');
  const chunks: Buffer[] = [];
  for await (const c of stdin) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

export function registerSecretCommands(program: Command, { context }: CommandEnv): void {
  const secrets = program.command('secrets').description("An environment's secrets: injected as variables, stored sealed, never shown");

  secrets
    .command('ls', { isDefault: true })
    .description('Secret names and when each was set (never values)')
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)')
    .action(async (o: { project: string; env: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const { items } = await (await ctx.droplet(DROPLET, o.url)).get<{ items: Array<{ name: string; updated_at: string }> }>(
        secretsPath(o.project, o.env),
      );
      ctx.out.result({ items }, () =>
        ctx.out.table(
          [
            { header: 'NAME', value: (s: { name: string }) => s.name },
            { header: 'UPDATED', value: (s: { updated_at: string }) => s.updated_at.slice(0, 19).replace('T', ' ') },
          ],
          items,
        ),
      );
    });

  secrets
    .command('set <name>')
    .description('Set a secret; the value is read from stdin (e.g. `printf %s "$TOKEN" | meshctl secrets set API_TOKEN ...`)')
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; env: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const value = await readStdin(process.stdin, (s) => ctx.out.note(s));
      if (!value)
        throw new CliError('INVALID_REQUEST', 'no value on stdin', undefined, `printf %s "$VALUE" | meshctl secrets set ${name} ...`);
      const r = await (await ctx.droplet(DROPLET, o.url)).put<{ name: string; updated_at: string }>(
        `${secretsPath(o.project, o.env)}/${encodeURIComponent(name)}`,
        { value },
      );
      ctx.out.result(r, () => ctx.out.line(`secret ${r.name} set in ${o.project}/${o.env} (applies from the next deploy)`));
    });

  secrets
    .command('rm <name>')
    .description('Delete a secret')
    .requiredOption('--project <project>')
    .requiredOption('--env <environment>')
    .option('--url <url>', 'deployer URL')
    .action(async (name: string, o: { project: string; env: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(`${secretsPath(o.project, o.env)}/${encodeURIComponent(name)}`);
      ctx.out.result({ deleted: name }, () => ctx.out.line(`secret ${name} deleted from ${o.project}/${o.env}`));
    });
}
