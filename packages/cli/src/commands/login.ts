import type { Command } from 'commander';
import { removeSession, writeSession } from '../config-file.js';
import { ApiError, CliError } from '../errors.js';
import { checkUrl } from '../context.js';
import type { CommandEnv } from './command-env.js';

interface TokenAnswer {
  token: string;
  expires_at: string;
  scopes?: string[];
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

export function registerLoginCommands(program: Command, { context }: CommandEnv): void {
  program
    .command('login')
    .description('Get an operator token from the registry with the admin key and store it (0600)')
    .option('--registry <url>', 'registry URL (env REGISTRY_URL)')
    .option('--admin-key <key>', 'the registry admin key (env REGISTRY_ADMIN_KEY; prefer --admin-key-stdin)')
    .option('--admin-key-stdin', 'read the admin key from stdin')
    .action(async (o: { registry?: string; adminKey?: string; adminKeyStdin?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const registryUrl = o.registry ?? ctx.env.REGISTRY_URL;
      if (!registryUrl) throw new CliError('INVALID_REQUEST', 'give --registry URL (or set REGISTRY_URL)');
      const key = o.adminKeyStdin ? await readStdin() : (o.adminKey ?? ctx.env.REGISTRY_ADMIN_KEY);
      if (!key) throw new CliError('INVALID_REQUEST', 'give --admin-key, --admin-key-stdin, or set REGISTRY_ADMIN_KEY');
      const registry = ctx.client('registry', checkUrl(registryUrl, o.registry ? '--registry' : 'REGISTRY_URL'));
      let answer: TokenAnswer;
      try {
        answer = await registry.post<TokenAnswer>('/auth/token', undefined, {
          query: { droplet_id: 'operator' },
          headers: { 'X-Registry-Key': key },
          auth: false,
        });
      } catch (err) {
        // A refused key must not send the operator in a circle ("run meshctl login").
        if (err instanceof ApiError) throw new ApiError(err.httpStatus, err.code, err.message, err.url, err.details);
        throw err;
      }
      if (typeof answer?.token !== 'string' || typeof answer.expires_at !== 'string') {
        throw new CliError('INTERNAL_ERROR', 'the registry answered without a token');
      }
      const path = ctx.configPath;
      await writeSession(path, { registry_url: registry.opts.baseUrl, token: answer.token, expires_at: answer.expires_at });
      const summary = {
        registry_url: registry.opts.baseUrl,
        droplet_id: 'operator',
        scopes: answer.scopes ?? [],
        expires_at: answer.expires_at,
        config_path: path,
      };
      ctx.out.result(summary, () => {
        ctx.out.line(`logged in to ${summary.registry_url} as operator (scopes: ${summary.scopes.join(', ') || '-'})`);
        ctx.out.line(`token expires at ${summary.expires_at}; saved to ${path}`);
      });
    });

  program
    .command('logout')
    .description('Forget the stored token')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = context(cmd);
      const removed = await removeSession(ctx.configPath);
      ctx.out.result({ removed, config_path: ctx.configPath }, () => ctx.out.line(removed ? `removed ${ctx.configPath}` : 'not logged in'));
    });
}
