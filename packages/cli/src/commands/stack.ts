import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { ApiError, CliError } from '../errors.js';
import type { HttpClient } from '../http.js';
import type { CommandEnv } from './command-env.js';
import { positiveInt } from './options.js';
import { type ApplyEnd, followApply } from './stack-follow.js';
import { printPlan, type StackPlan } from './stack-render.js';

const DROPLET = 'orchestrator';
/** An apply that ended but not as `succeeded` (rolled back, failed, partial): like a failed deploy. */
export const EXIT_APPLY_FAILED = 2;
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$/;

interface StackFlags {
  file?: string;
  name?: string;
  url?: string;
  yes?: boolean;
  onFailure: 'rollback' | 'stop';
  followTimeout: number;
  detach?: boolean;
}

/** The stack's name: --name, else the file's name without .yaml/.yml/.json. */
function stackName(o: StackFlags): string {
  const name = o.name ?? (o.file ? basename(o.file).replace(/\.(ya?ml|json)$/i, '') : undefined);
  if (!name) throw new CliError('INVALID_REQUEST', 'give the stack file (-f FILE) or its name (--name NAME)');
  if (!NAME.test(name))
    throw new CliError(
      'INVALID_REQUEST',
      `'${name}' is not a stack name (1-32 of [a-z0-9-], starting and ending with a letter or digit)`,
      undefined,
      'pass --name NAME',
    );
  return name;
}

async function fileText(o: StackFlags): Promise<string> {
  if (!o.file) throw new CliError('INVALID_REQUEST', 'give the stack file with -f FILE');
  try {
    return await readFile(o.file, 'utf8');
  } catch (err) {
    throw new CliError('INVALID_REQUEST', `cannot read ${o.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A refused file names the file; each problem keeps its path in it (printed below the message). */
async function withFile<T>(o: StackFlags, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ApiError && err.code === 'INVALID_REQUEST' && (err.details as { location?: string })?.location === 'stack file')
      throw new CliError('INVALID_REQUEST', `${o.file}: ${err.message}`, err.details);
    throw err;
  }
}

const enc = encodeURIComponent;

async function planFile(orch: HttpClient, o: StackFlags): Promise<StackPlan> {
  const file = await fileText(o);
  return withFile(o, () => orch.post<StackPlan>(`/stacks/${enc(stackName(o))}/plan`, { file }));
}

/** Follow an apply to its end with one line per step on stderr, print the outcome, set the exit status. */
async function follow(ctx: Context, orch: HttpClient, stack: string, apply: { id: string; status: string }, o: StackFlags) {
  if (o.detach) {
    ctx.out.result(apply, () => ctx.out.line(`apply ${apply.id} ${apply.status}; follow with \`meshctl stack status --name ${stack}\``));
    return;
  }
  if (!ctx.out.json) ctx.out.note(`apply ${apply.id} started`);
  const end: ApplyEnd = await followApply(
    orch,
    stack,
    apply.id,
    (e) => {
      if (ctx.out.json) return;
      const why = e.error?.message ?? e.detail;
      ctx.out.note(`[${e.n}/${e.total}] ${e.action} ${e.id}: ${e.status}${why ? ` (${why})` : ''}`);
    },
    { timeoutMs: o.followTimeout * 1000 },
  );
  if (end.status !== 'succeeded') ctx.exitCode = EXIT_APPLY_FAILED;
  if (ctx.out.json) {
    ctx.out.data(await orch.get(`/stacks/${enc(stack)}/applies/${enc(apply.id)}`));
    return;
  }
  if (end.failed_step) ctx.out.line(`step ${end.failed_step.n} ${end.failed_step.id} failed: ${end.failed_step.error}`);
  for (const u of end.undo) ctx.out.line(`  undo ${u.id}: ${u.result} (${u.detail})`);
  for (const n of end.not_done) ctx.out.line(`  not done ${n.id}: ${n.reason}`);
  ctx.out.line(`apply ${apply.id} ${end.status}`);
}

function common(cmd: Command, withFile: 'required' | 'optional'): Command {
  return cmd
    .option('-f, --file <file>', `the stack file (YAML or JSON)${withFile === 'optional' ? '; or give --name' : ''}`)
    .option('--name <name>', "the stack's name (default: the file's name without .yaml/.yml/.json)")
    .option('--url <url>', 'orchestrator URL (env MESHCTL_ORCHESTRATOR_URL)');
}

function applyOptions(cmd: Command): Command {
  return cmd
    .option('--on-failure <mode>', 'rollback (undo this apply) or stop (leave it paused)', (v) => {
      if (v !== 'rollback' && v !== 'stop') throw new CliError('INVALID_REQUEST', '--on-failure is rollback or stop');
      return v;
    })
    .option('--detach', 'print the apply id and return at once')
    .option('--follow-timeout <seconds>', 'stop following after this long (the apply goes on)', positiveInt, 3600);
}

export function registerStackCommands(program: Command, { context }: CommandEnv): void {
  const stack = program
    .command('stack')
    .description('Declarative stacks: one file for servers, projects, environments, services and routes (the orchestrator)');

  common(stack.command('validate'), 'required')
    .description('Check a stack file without reading or changing anything live; every problem with its path in the file')
    .action(async (o: StackFlags, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      const file = await fileText(o);
      const r = await withFile(o, () =>
        orch.post<{ valid: boolean; resources: string[] }>(`/stacks/${enc(stackName(o))}/validate`, { file }),
      );
      ctx.out.result(r, () => ctx.out.line(`${o.file}: valid (${r.resources.length} resources)`));
    });

  common(stack.command('plan'), 'required')
    .description('The exact steps applying the file would take, in order, with the monthly cost change')
    .option('-v, --verbose', 'each change with its before and after')
    .action(async (o: StackFlags & { verbose?: boolean }, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      const p = await planFile(orch, o);
      ctx.out.result(p, () => printPlan(ctx.out, p, !!o.verbose));
    });

  common(stack.command('diff'), 'optional')
    .description('With -f: each field the file would change, before → after; without: drift of the applied stack from what runs')
    .action(async (o: StackFlags, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      if (o.file) {
        const p = await planFile(orch, o);
        ctx.out.result(p, () => printPlan(ctx.out, p, true));
        return;
      }
      const name = stackName(o);
      const d = await orch.get<{
        in_sync: boolean;
        differences: Array<{ id: string; problem: string; changes: Array<{ field: string }> }>;
      }>(`/stacks/${enc(name)}/drift`);
      if (!d.in_sync) ctx.exitCode = EXIT_APPLY_FAILED;
      ctx.out.result(d, () => {
        if (d.in_sync) ctx.out.line(`stack ${name}: in sync`);
        for (const x of d.differences)
          ctx.out.line(`drift ${x.id}: ${x.problem}${x.changes.length ? ` (${x.changes.map((c) => c.field).join(', ')})` : ''}`);
      });
    });

  applyOptions(common(stack.command('apply'), 'required'))
    .description('Plan the file, show the plan, apply it and follow its progress (exit 2 when it does not succeed)')
    .option('-y, --yes', 'apply destructive steps (deletes, replacements) without asking')
    .action(async (o: StackFlags, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      const name = stackName(o);
      const p = await planFile(orch, o);
      if (!ctx.out.json) printPlan(ctx.out, p);
      if (p.steps.length === 0) {
        if (ctx.out.json) ctx.out.data({ plan: p, apply: null });
        return;
      }
      const destructive = p.steps.filter((s) => s.destructive);
      if (destructive.length > 0 && !o.yes)
        throw new CliError(
          'INVALID_REQUEST',
          `the plan has ${destructive.length} destructive step(s) (${destructive.map((s) => `${s.action} ${s.id}`).join(', ')}): nothing applied`,
          undefined,
          'read the plan, then run again with --yes',
        );
      const a = await orch.post<{ id: string; status: string }>(`/stacks/${enc(name)}/apply`, {
        plan_id: p.id,
        on_failure: o.onFailure ?? 'rollback',
      });
      await follow(ctx, orch, name, a, o);
    });

  common(stack.command('status'), 'optional')
    .description("A stack's status, resources, last apply and last drift check")
    .action(async (o: StackFlags, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      const name = stackName(o);
      const s = await orch.get<{
        status: string;
        revision: number;
        resources: Array<{ id: string; created_by_stack: boolean }>;
        last_apply: { id: string; status: string; started_at: string; finished_at?: string } | null;
        last_drift: { in_sync: boolean; checked_at: string; differences: Array<{ id: string; problem: string }> } | null;
      }>(`/stacks/${enc(name)}`);
      ctx.out.result(s, () => {
        ctx.out.line(`stack ${name}: ${s.status} (revision ${s.revision}, ${s.resources.length} resources)`);
        if (s.last_apply) ctx.out.line(`last apply ${s.last_apply.id}: ${s.last_apply.status}`);
        if (s.last_drift)
          ctx.out.line(
            s.last_drift.in_sync
              ? `drift: in sync (checked ${s.last_drift.checked_at})`
              : `drift: ${s.last_drift.differences.map((d) => `${d.id} ${d.problem}`).join(', ')} (checked ${s.last_drift.checked_at})`,
          );
        for (const r of s.resources) ctx.out.line(`  ${r.id}${r.created_by_stack ? '' : ' (used, not created)'}`);
      });
    });

  applyOptions(common(stack.command('destroy'), 'optional'))
    .description('Delete everything the stack created, and nothing else: shows the plan, then needs --yes')
    .option('-y, --yes', 'destroy without asking')
    .action(async (o: StackFlags, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      const name = stackName(o);
      if (!o.yes) {
        // Without ?confirm the orchestrator answers 400 with the plan of deletions.
        try {
          await orch.delete(`/stacks/${enc(name)}`);
        } catch (err) {
          const plan = (err as ApiError).details as { plan?: StackPlan } | undefined;
          if (!(err instanceof ApiError) || !plan?.plan) throw err;
          // --json: one document on stdout, the error envelope with the plan in its details.
          if (!ctx.out.json) printPlan(ctx.out, plan.plan);
          throw new CliError('INVALID_REQUEST', `nothing destroyed: stack '${name}' is destroyed only with --yes`, {
            plan: plan.plan,
          });
        }
      }
      const r = await orch.send<{ id: string; status: string }>('DELETE', `/stacks/${enc(name)}`, {
        query: { confirm: name, on_failure: o.onFailure },
      });
      await follow(ctx, orch, name, r.body, o);
    });

  applyOptions(common(stack.command('promote'), 'optional'))
    .description('Deploy to one environment exactly the images another one runs (e.g. uat → prod)')
    .requiredOption('--from <environment>', 'where the images run now')
    .requiredOption('--to <environment>', 'where they go')
    .option('--project <project>', 'only this project')
    .action(async (o: StackFlags & { from: string; to: string; project?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const orch = await ctx.droplet(DROPLET, o.url);
      const name = stackName(o);
      const r = await orch.post<{
        images: Array<{ project: string; service: string; image: string; was: string }>;
        apply: { id: string; status: string };
      }>(`/stacks/${enc(name)}/promote`, {
        from: o.from,
        to: o.to,
        ...(o.project ? { project: o.project } : {}),
        ...(o.onFailure ? { on_failure: o.onFailure } : {}),
      });
      if (!ctx.out.json) for (const i of r.images) ctx.out.note(`${i.project}/${i.service}: ${i.was} → ${i.image}`);
      await follow(ctx, orch, name, r.apply, o);
    });
}
