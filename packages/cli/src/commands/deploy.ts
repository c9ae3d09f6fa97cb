import { openAsBlob } from 'node:fs';
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { CliError } from '../errors.js';
import type { HttpClient } from '../http.js';
import { DeployProgress, rendererFor, type ProgressRenderer } from '../deploy-progress.js';
import { followDeployment } from '../deploy-follow.js';
import { archiveDirectory } from '../source-archive.js';
import { age, type Column } from '../table.js';
import type { CommandEnv } from './command-env.js';
import { positiveInt } from './options.js';

const DROPLET = 'deployer';
/** Exit status of a deploy or rollback that ended in anything but `succeeded`. */
export const EXIT_DEPLOY_FAILED = 2;

interface Accepted {
  id: string;
  status: string;
  queue_position?: number;
}

interface Deployment {
  id: string;
  project: string;
  service: string;
  environment: string;
  status: string;
  percent?: number;
  step?: string;
  reason?: string;
  source: { kind: string; image?: string; url?: string; ref?: string; filename?: string };
  image?: string;
  created_at: string;
  finished_at?: string;
  rollback_of?: string;
  steps?: Array<{ name: string; status: string; duration_ms?: number; detail?: string }>;
}

interface FollowFlags {
  detach?: boolean;
  verbose?: boolean;
  followTimeout: number;
}

/** `URL#ref` → {url, ref}; the ref defaults to the deployer's (HEAD). */
export function parseGitSource(value: string): { url: string; ref?: string } {
  const i = value.lastIndexOf('#');
  if (i < 0) return { url: value };
  const ref = value.slice(i + 1);
  if (!ref) throw new CliError('INVALID_REQUEST', `--git ${value}: nothing after '#'`);
  return { url: value.slice(0, i), ref };
}

const sourceText = (s: Deployment['source']) =>
  s.kind === 'image' ? s.image : s.kind === 'git' ? `${s.url}#${s.ref}` : s.kind === 'upload' ? `upload ${s.filename}` : s.kind;

/** Follow to the end with a bar (or lines), print the outcome, and set the exit status. */
async function follow(ctx: Context, deployer: HttpClient, accepted: Accepted, flags: FollowFlags): Promise<void> {
  if (flags.detach) {
    ctx.out.result(accepted, () =>
      ctx.out.line(
        `deployment ${accepted.id} ${accepted.status}${accepted.queue_position ? ` (queue position ${accepted.queue_position})` : ''}; follow with \`meshctl deployments show ${accepted.id}\``,
      ),
    );
    return;
  }
  const quiet: ProgressRenderer = { update: () => undefined, note: () => undefined, stop: () => undefined };
  const renderer = ctx.out.json ? quiet : rendererFor(ctx.out.stderr as NodeJS.WriteStream);
  if (!ctx.out.json)
    ctx.out.note(
      `deployment ${accepted.id} ${accepted.status}${accepted.queue_position ? ` (queue position ${accepted.queue_position})` : ''}`,
    );
  const progress = new DeployProgress(renderer, { verbose: flags.verbose });
  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort();
  process.once('SIGINT', onSigint);
  let final: { status: string; message?: string };
  try {
    final = await followDeployment(deployer, accepted.id, progress, { timeoutMs: flags.followTimeout * 1000, signal: interrupt.signal });
  } catch (err) {
    progress.stop();
    if (interrupt.signal.aborted) {
      ctx.out.note(`stopped following; deployment ${accepted.id} goes on (meshctl deployments show ${accepted.id})`);
      ctx.exitCode = 130;
      return;
    }
    throw err;
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
  progress.stop();
  if (final.status !== 'succeeded') ctx.exitCode = EXIT_DEPLOY_FAILED;
  if (ctx.out.json) {
    ctx.out.data(await deployer.get(`/deployments/${encodeURIComponent(accepted.id)}`));
    return;
  }
  ctx.out.line(`deployment ${accepted.id} ${final.status}${final.message ? `: ${final.message}` : ''}`);
}

function followOptions(cmd: Command): Command {
  return cmd
    .option('--detach', 'print the deployment id and return at once')
    .option('-v, --verbose', 'show build and container log lines')
    .option('--follow-timeout <seconds>', 'stop following after this long (the deploy goes on)', positiveInt, 1800)
    .option('--url <url>', 'deployer URL (env MESHCTL_DEPLOYER_URL)');
}

const deploymentColumns: Column<Deployment>[] = [
  { header: 'ID', value: (d) => d.id },
  { header: 'PROJECT', value: (d) => d.project },
  { header: 'SERVICE', value: (d) => d.service },
  { header: 'ENV', value: (d) => d.environment },
  { header: 'STATUS', value: (d) => d.status },
  { header: 'SOURCE', value: (d) => sourceText(d.source) },
  { header: 'CREATED', value: (d) => age(d.created_at) },
];

export function registerDeployCommands(program: Command, { context }: CommandEnv): void {
  followOptions(
    program
      .command('deploy <service>')
      .description('Deploy a service from an image, a git URL or a local directory, with live progress')
      .requiredOption('--project <project>')
      .requiredOption('--env <environment>')
      .option('--image <image>', 'a container image')
      .option('--git <url[#ref]>', 'a git repository, optionally at a branch, tag or commit')
      .option('--git-path <path>', 'sub-directory of the repository to build')
      .option('--dir <path>', 'a local directory, uploaded as a .tar.gz (without .git and node_modules)')
      .option('--no-queue', 'refuse instead of queueing behind a running deploy of this service')
      .option('--auto-rollback', 'switch back if the new version fails its post-switch check'),
  ).action(
    async (
      service: string,
      o: FollowFlags & {
        project: string;
        env: string;
        image?: string;
        git?: string;
        gitPath?: string;
        dir?: string;
        queue: boolean;
        autoRollback?: boolean;
        url?: string;
      },
      cmd: Command,
    ) => {
      const ctx = context(cmd);
      const sources = [o.image, o.git, o.dir].filter((s) => s !== undefined);
      if (sources.length !== 1) throw new CliError('INVALID_REQUEST', 'give exactly one of --image, --git or --dir');
      if (o.gitPath && !o.git) throw new CliError('INVALID_REQUEST', '--git-path goes with --git');
      const deployer = await ctx.droplet(DROPLET, o.url);
      let accepted: Accepted;
      if (o.dir) {
        const archive = await archiveDirectory(o.dir);
        try {
          if (!ctx.out.json) ctx.out.note(`uploading ${o.dir} (${(archive.bytes / 1024).toFixed(1)} KiB)`);
          const form = new FormData();
          form.set('project', o.project);
          form.set('service', service);
          form.set('environment', o.env);
          form.set('queue', String(o.queue));
          if (o.autoRollback !== undefined) form.set('auto_rollback', String(o.autoRollback));
          form.set('source', await openAsBlob(archive.path, { type: 'application/gzip' }), 'source.tar.gz');
          accepted = (await deployer.send<Accepted>('POST', '/deployments', { form, timeoutMs: Math.max(ctx.timeoutMs, 300_000) })).body;
        } finally {
          await archive.cleanup();
        }
      } else {
        const source = o.image ? { image: o.image } : { git: { ...parseGitSource(o.git!), ...(o.gitPath ? { path: o.gitPath } : {}) } };
        accepted = await deployer.post<Accepted>('/deployments', {
          project: o.project,
          service,
          environment: o.env,
          source,
          queue: o.queue,
          ...(o.autoRollback !== undefined ? { auto_rollback: o.autoRollback } : {}),
        });
      }
      await follow(ctx, deployer, accepted, o);
    },
  );

  followOptions(
    program
      .command('rollback <deployment-id>')
      .description("Redeploy that deployment's exact image, with live progress")
      .option('--no-queue', 'refuse instead of queueing behind a running deploy'),
  ).action(async (id: string, o: FollowFlags & { queue: boolean; url?: string }, cmd: Command) => {
    const ctx = context(cmd);
    const deployer = await ctx.droplet(DROPLET, o.url);
    const accepted = await deployer.post<Accepted & { rollback_of: string }>(`/deployments/${encodeURIComponent(id)}/rollback`, {
      queue: o.queue,
    });
    if (!ctx.out.json) ctx.out.note(`rolling back to ${accepted.rollback_of}`);
    await follow(ctx, deployer, accepted, o);
  });

  const deployments = program.command('deployments').description('Deployment history');
  deployments
    .command('ls', { isDefault: true })
    .description('Deployments, newest first')
    .option('--project <project>')
    .option('--service <service>')
    .option('--env <environment>')
    .option('--status <status>', 'queued, running, succeeded, failed, interrupted, rolled_back')
    .option('--limit <n>', 'at most this many', positiveInt, 50)
    .option('--url <url>', 'deployer URL')
    .action(async (o: { project?: string; service?: string; env?: string; status?: string; limit: number; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const body = await deployer.get<{ items: Deployment[] }>('/deployments', {
        project: o.project,
        service: o.service,
        environment: o.env,
        status: o.status,
        per_page: Math.min(o.limit, 200),
      });
      const items = body.items.slice(0, o.limit);
      ctx.out.result({ items }, () => ctx.out.table(deploymentColumns, items));
    });
  deployments
    .command('show <deployment-id>')
    .description('One deployment with its steps')
    .option('--url <url>', 'deployer URL')
    .action(async (id: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const deployer = await ctx.droplet(DROPLET, o.url);
      const d = await deployer.get<Deployment>(`/deployments/${encodeURIComponent(id)}`);
      ctx.out.result(d, () => {
        ctx.out.line(
          `deployment ${d.id}: ${d.project}/${d.service}/${d.environment} ${d.status}${d.percent !== undefined ? ` (${d.percent}%)` : ''}`,
        );
        ctx.out.line(
          `source: ${sourceText(d.source)}${d.image ? `  image: ${d.image}` : ''}${d.rollback_of ? `  rollback of ${d.rollback_of}` : ''}`,
        );
        if (d.reason) ctx.out.line(`reason: ${d.reason}`);
        if (d.steps?.length) {
          ctx.out.line();
          ctx.out.table(
            [
              { header: 'STEP', value: (s: NonNullable<Deployment['steps']>[number]) => s.name },
              { header: 'STATUS', value: (s) => s.status },
              {
                header: 'TOOK',
                value: (s) => (s.duration_ms !== undefined ? `${(s.duration_ms / 1000).toFixed(1)}s` : null),
                align: 'right',
              },
              { header: 'DETAIL', value: (s) => s.detail },
            ],
            d.steps,
          );
        }
      });
    });
}
