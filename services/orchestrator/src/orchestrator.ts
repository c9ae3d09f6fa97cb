import { randomUUID } from 'node:crypto';
import { Conflict, InvalidRequest, NotFound, UdcError, type Logger } from '@droplet-mesh/udc-kit';
import { liveRevision, plan as makePlan, sourceText, stable } from './domain/planner.js';
import { desiredResources, kindOf, type Managed, stackNameProblems } from './domain/resources.js';
import { parseStackSource, StackFileError } from './domain/stack-parse.js';
import type { StackFile } from './domain/stack-schema.js';
import { DriftScheduler } from './drift-scheduler.js';
import { executeStep, undoStep, type ExecDeps } from './live/execute.js';
import { CallFailed, type MeshClient } from './live/mesh-client.js';
import { observe } from './live/observe.js';
import type { ApplyRecord, ApplyStatus, DriftRecord, PlanRecord, StackRecord, StepState, Store } from './store.js';

export interface OrchestratorOptions {
  store: Store;
  mesh: MeshClient;
  logger: Logger;
  emit: (type: string, data: unknown, level?: 'info' | 'warn' | 'error') => void;
  /** An apply whose lease is older than this is taken over (its orchestrator died). */
  leaseStaleMs: number;
  deployTimeoutMs: number;
  serverTimeoutMs: number;
  pollMs: number;
  /** How long a step waits for a droplet that does not answer. */
  retryMs: number;
}

/** The file problems as the 400 every route answers with: each one with its path in the file. */
export function fileError(err: StackFileError): InvalidRequest {
  return new InvalidRequest(err.message, { location: 'stack file', fields: err.fields });
}

const now = () => new Date().toISOString();

/** Stacks: plan against live state, apply step by step with progress in KV, resume, drift, destroy, promote. */
export class Orchestrator {
  readonly owner = randomUUID();
  private readonly stopping = new AbortController();
  private readonly running = new Map<string, Promise<ApplyRecord>>();
  /** The resume pass under way, if any (passes never overlap). */
  private resuming?: Promise<string[]>;
  private resumeTimer?: NodeJS.Timeout;
  private driftChecks?: DriftScheduler;
  private pruneTimer?: NodeJS.Timeout;

  constructor(private readonly o: OrchestratorOptions) {}

  /** The file for stack `name`, or a 400 with every problem and its path in the file. */
  parse(name: string, input: unknown): StackFile {
    let file: StackFile;
    try {
      file = parseStackSource(input);
    } catch (err) {
      if (err instanceof StackFileError) throw fileError(err);
      throw err;
    }
    const problems = stackNameProblems(name, file);
    if (problems.length > 0) throw fileError(new StackFileError('the stack file is invalid', problems));
    return file;
  }

  async stack(name: string): Promise<StackRecord> {
    const s = await this.o.store.getStack(name);
    if (!s) throw new NotFound(`no stack '${name}'`);
    return s;
  }

  listStacks() {
    return this.o.store.listStacks();
  }
  getPlan(id: string) {
    return this.o.store.getPlan(id);
  }
  getApply(id: string) {
    return this.o.store.getApply(id);
  }

  private async stackOrNew(name: string): Promise<StackRecord> {
    const s = await this.o.store.getStack(name);
    if (s) return s;
    const t = now();
    return { name, revision: 0, status: 'planned', desired: null, source: null, managed: {}, created_at: t, updated_at: t };
  }

  /** Plan `file` for stack `name`: steps, cost, warnings; stored with the live revision it saw. */
  async plan(name: string, file: StackFile, source: string, kind: PlanRecord['kind'] = 'apply'): Promise<PlanRecord> {
    const existing = await this.o.store.getStack(name);
    const s = existing ?? (await this.stackOrNew(name));
    const desired = desiredResources(name, file);
    const obs = await observe(this.o.mesh, name, desired, s.managed);
    const unknownSizes = Object.entries(file.servers).filter(
      ([, sv]) => obs.catalogs.includes(sv.provider) && !obs.prices[`${sv.provider}/${sv.size}`],
    );
    if (unknownSizes.length > 0)
      throw fileError(
        new StackFileError(
          'the stack file names sizes the providers do not offer',
          unknownSizes.map(([n, sv]) => ({
            path: `servers.${n}.size`,
            message: `${sv.provider} has no size '${sv.size}' (GET /catalog/sizes on multi-cloud-manager)`,
          })),
        ),
      );
    const result = makePlan(desired, obs.live, s.managed, obs.prices);
    if (!existing) await this.o.store.putStack(s);
    const record: PlanRecord = {
      id: randomUUID(),
      stack: name,
      kind,
      created_at: now(),
      stack_revision: s.revision,
      live_revision: liveRevision(obs.live, s.revision),
      live: obs.live,
      file,
      source,
      warnings: obs.warnings,
      status: 'pending',
      ...result,
    };
    await this.o.store.putPlan(record);
    return record;
  }

  /** What differs between the stack's last applied file and what runs. */
  async drift(name: string) {
    const s = await this.stack(name);
    if (!s.desired) throw new Conflict(`stack '${name}' has never been applied: nothing to compare`);
    const desired = desiredResources(name, s.desired);
    const obs = await observe(this.o.mesh, name, desired, s.managed);
    const r = makePlan(desired, obs.live, s.managed, obs.prices);
    const differences = r.steps.map((st) => ({
      id: st.id,
      kind: st.kind,
      problem:
        st.action === 'create'
          ? 'missing'
          : st.action === 'delete'
            ? 'not in the file'
            : st.action === 'deploy'
              ? 'release differs'
              : 'changed',
      changes: st.changes,
      reasons: st.reasons,
      live: st.before,
      desired: st.after,
    }));
    if (differences.length > 0) this.o.emit('stack.drifted', { stack: name, differences: differences.map((d) => d.id) }, 'warn');
    return { stack: name, in_sync: differences.length === 0, checked_at: now(), differences, warnings: obs.warnings };
  }

  /** Start applying a plan: refused when it is not the stack's latest view of live state. */
  async apply(
    name: string,
    planId: string,
    onFailure: 'rollback' | 'stop',
    opts: { confirmedDestroy?: boolean } = {},
  ): Promise<ApplyRecord> {
    const p = await this.o.store.getPlan(planId);
    if (!p || p.stack !== name) throw new NotFound(`no plan '${planId}' for stack '${name}'`);
    if (p.kind === 'destroy' && !opts.confirmedDestroy)
      throw new InvalidRequest(`a destroy plan is applied only by DELETE /stacks/${name}?confirm=${name}`, {
        fields: [{ path: 'plan_id', message: 'is a destroy plan' }],
      });
    if (p.status !== 'pending') throw new Conflict(`plan ${planId} was already applied (${p.status}): make a new plan`);
    const applyId = randomUUID();
    if (!(await this.o.store.acquireLease(name, { apply_id: applyId, owner: this.owner, at: Date.now() }, this.o.leaseStaleMs))) {
      const l = await this.o.store.readLease(name);
      throw new Conflict(`stack '${name}' is being applied (apply ${l?.apply_id ?? 'unknown'}): one apply per stack at a time`, {
        apply_id: l?.apply_id,
      });
    }
    try {
      const s = await this.stackOrNew(name);
      if (s.last_apply?.status === 'running')
        throw new Conflict(
          `apply ${s.last_apply.id} of stack '${name}' has not finished: its orchestrator stopped and it resumes once its lease is ${this.o.leaseStaleMs / 1000} s old`,
          { apply_id: s.last_apply.id },
        );
      const desired = desiredResources(name, p.file);
      const obs = await observe(this.o.mesh, name, desired, s.managed);
      const rev = liveRevision(obs.live, s.revision);
      if (rev !== p.live_revision || s.revision !== p.stack_revision) {
        const changed = [...new Set([...Object.keys(obs.live), ...Object.keys(p.live)])]
          .filter((id) => stable(obs.live[id]) !== stable(p.live[id]))
          .sort();
        throw new Conflict('the live state changed since this plan was made: make a new plan', {
          plan_id: planId,
          changed,
          stack_revision: { plan: p.stack_revision, now: s.revision },
        });
      }
      const a: ApplyRecord = {
        id: applyId,
        stack: name,
        plan_id: planId,
        kind: p.kind,
        on_failure: onFailure,
        status: 'running',
        owner: this.owner,
        steps: p.steps.map((st) => ({ ...st, status: 'pending' })),
        undo: [],
        not_done: [],
        resumed: 0,
        created_at: now(),
      };
      await this.o.store.putApply(a);
      p.status = 'applying';
      await this.o.store.putPlan(p);
      s.revision++;
      s.status = 'applying';
      s.last_apply = { id: a.id, plan_id: planId, status: 'running', started_at: a.created_at, destroy: p.kind === 'destroy' };
      await this.o.store.putStack(s);
      this.o.emit('apply.started', { stack: name, apply_id: a.id, plan_id: planId, steps: a.steps.length });
      this.launch(a, p);
      return a;
    } catch (err) {
      await this.o.store.releaseLease(name, applyId).catch(() => undefined);
      throw err;
    }
  }

  /** The apply's promise (this process's), to wait on. */
  finished(applyId: string): Promise<ApplyRecord> | undefined {
    return this.running.get(applyId);
  }

  private launch(a: ApplyRecord, p: PlanRecord): void {
    const done = this.run(a, p).finally(() => this.running.delete(a.id));
    done.catch((err) => this.o.logger.error({ err, apply_id: a.id }, 'apply stopped unexpectedly'));
    this.running.set(a.id, done);
  }

  /** Run the apply from its first unfinished step; every state change is written to KV first. */
  private async run(a: ApplyRecord, p: PlanRecord): Promise<ApplyRecord> {
    const { store } = this.o;
    const signal = this.stopping.signal;
    const lease = { apply_id: a.id, owner: this.owner, at: Date.now() };
    const beat = setInterval(() => void store.renewLease(a.stack, lease).catch(() => undefined), Math.max(200, this.o.leaseStaleMs / 4));
    beat.unref();
    const save = async () => {
      await store.putApply(a);
    };
    const exec = (): ExecDeps => ({
      mesh: this.o.mesh,
      stack: a.stack,
      applyId: a.id,
      save,
      signal,
      deployTimeoutMs: this.o.deployTimeoutMs,
      serverTimeoutMs: this.o.serverTimeoutMs,
      pollMs: this.o.pollMs,
    });
    try {
      for (const step of a.steps) {
        if (step.status === 'succeeded' || step.status === 'skipped') continue;
        if (signal.aborted) return a; // stopping: the state in KV lets the next orchestrator continue
        if (step.unsupported) {
          step.status = 'skipped';
          step.detail = step.unsupported;
          a.not_done.push({ n: step.n, id: step.id, reason: step.unsupported });
          await save();
          continue;
        }
        step.status = 'running';
        step.started_at ??= now();
        await save();
        try {
          step.detail = await this.withRetry(step, () => executeStep(exec(), step), signal);
        } catch (err) {
          if (signal.aborted) return a;
          step.status = 'failed';
          step.finished_at = now();
          const message = err instanceof CallFailed || err instanceof Error ? err.message : String(err);
          step.error = { message, ...(err instanceof CallFailed ? { code: err.upstreamCode, status: err.status } : {}) };
          a.failed_step = { n: step.n, id: step.id, error: message };
          await save();
          this.o.logger.warn({ apply_id: a.id, step: step.id, err: message }, 'apply step failed');
          if (a.on_failure === 'rollback') await this.undo(a, exec());
          return await this.finish(
            a,
            p,
            a.on_failure === 'rollback' && a.undo.every((u) => u.result === 'undone') ? 'rolled_back' : 'failed',
          );
        }
        step.status = 'succeeded';
        step.finished_at = now();
        await save();
        await this.record(a.stack, step);
        this.o.emit('apply.step', { stack: a.stack, apply_id: a.id, n: step.n, id: step.id, action: step.action, status: step.status });
      }
      return await this.finish(a, p, a.not_done.length > 0 ? 'partial' : 'succeeded');
    } finally {
      clearInterval(beat);
    }
  }

  /**
   * A droplet that does not answer (restarting, not registered yet, no token yet) is waited
   * for, up to retryMs; an answer that refuses the step fails it at once.
   */
  private async withRetry<T>(step: StepState, fn: () => Promise<T>, signal: AbortSignal): Promise<T> {
    const deadline = Date.now() + this.o.retryMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const transient =
          err instanceof CallFailed
            ? err.status >= 502 || (err.status === 409 && step.kind === 'server' && /in progress/.test(err.message))
            : err instanceof UdcError && err.code === 'DEPENDENCY_UNAVAILABLE';
        if (!transient || Date.now() > deadline || signal.aborted) throw err;
        this.o.logger.info({ step: step.id, attempt, err: (err as Error).message }, 'a droplet did not answer; retrying the step');
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** attempt)));
      }
    }
  }

  /** Keep the stack's inventory in step with what each finished step did. */
  private async record(stack: string, step: StepState, undone = false): Promise<void> {
    const s = await this.stack(stack);
    const m: Managed = s.managed;
    if (undone) {
      if (step.action === 'create' || (step.action === 'deploy' && !step.before)) delete m[step.id];
      // A delete put back (a dropped placement): the stack made it, so it is the stack's again.
      else if (step.action === 'delete' && step.before)
        m[step.id] = { kind: kindOf(step.id), created: true, attrs: step.before, ...(step.ref ? { ref: step.ref } : {}) };
      else if (m[step.id] && step.before) m[step.id] = { ...m[step.id], attrs: step.before };
    } else if (step.action === 'delete') delete m[step.id];
    else {
      const ref = step.created_ref ?? step.ref;
      m[step.id] = {
        kind: kindOf(step.id),
        created:
          step.action === 'create' ||
          step.action === 'replace' ||
          (step.action === 'deploy' && !step.before) ||
          (m[step.id]?.created ?? false),
        attrs: step.after ?? {},
        ...(ref ? { ref } : {}),
      };
    }
    await this.o.store.putStack(s);
  }

  private async undo(a: ApplyRecord, d: ExecDeps): Promise<void> {
    const done = a.steps.filter((s) => s.status === 'succeeded').reverse();
    for (const step of done) {
      const u = await undoStep(d, step);
      a.undo.push(u);
      await this.o.store.putApply(a);
      if (u.result === 'undone') await this.record(a.stack, step, true);
    }
  }

  private async finish(a: ApplyRecord, p: PlanRecord, status: ApplyStatus): Promise<ApplyRecord> {
    a.status = status;
    a.finished_at = now();
    await this.o.store.putApply(a);
    p.status = 'applied';
    await this.o.store.putPlan(p);
    const s = await this.stack(a.stack);
    s.revision++;
    if (status === 'succeeded' || status === 'partial') {
      s.desired = p.file;
      s.source = p.source;
      // Resources the stack used but did not create leave its inventory once the file no longer names them.
      const wanted = new Set(desiredResources(a.stack, p.file).map((r) => r.id));
      for (const [id, m] of Object.entries(s.managed)) if (!m.created && !wanted.has(id)) delete s.managed[id];
    }
    s.status =
      p.kind === 'destroy' && status === 'succeeded'
        ? 'destroyed'
        : status === 'succeeded'
          ? 'applied'
          : status === 'partial'
            ? 'partial'
            : status === 'rolled_back'
              ? 'rolled_back'
              : 'failed';
    s.last_apply = { id: a.id, plan_id: p.id, status, started_at: a.created_at, finished_at: a.finished_at, destroy: p.kind === 'destroy' };
    await this.o.store.putStack(s);
    await this.o.store.releaseLease(a.stack, a.id);
    this.o.emit(
      `apply.${status}`,
      { stack: a.stack, apply_id: a.id, failed_step: a.failed_step, not_done: a.not_done },
      status === 'succeeded' ? 'info' : 'warn',
    );
    this.o.logger.info({ apply_id: a.id, stack: a.stack, status }, 'apply finished');
    return a;
  }

  /**
   * Continue applies whose orchestrator died (their lease went stale); called at start and then
   * periodically. One pass at a time: two overlapping passes (a slow pass on a loaded machine)
   * both took over the same apply and ran it twice.
   */
  resumeInterrupted(): Promise<string[]> {
    this.resuming ??= this.resumePass().finally(() => {
      this.resuming = undefined;
    });
    return this.resuming;
  }

  private async resumePass(): Promise<string[]> {
    const resumed: string[] = [];
    for (const a of await this.o.store.listApplies()) {
      if (a.status !== 'running' || this.running.has(a.id)) continue;
      const lease = await this.o.store.readLease(a.stack);
      if (lease && lease.apply_id === a.id && lease.owner === this.owner) continue; // ours, being launched
      if (lease && lease.apply_id === a.id && lease.owner !== this.owner && lease.still_ms < this.o.leaseStaleMs) continue;
      if (lease && lease.apply_id !== a.id && lease.still_ms < this.o.leaseStaleMs) continue;
      if (!(await this.o.store.acquireLease(a.stack, { apply_id: a.id, owner: this.owner, at: Date.now() }, this.o.leaseStaleMs))) continue;
      const p = await this.o.store.getPlan(a.plan_id);
      if (!p) continue;
      a.owner = this.owner;
      a.resumed++;
      await this.o.store.putApply(a);
      this.o.logger.warn({ apply_id: a.id, stack: a.stack }, 'resuming an interrupted apply');
      this.o.emit('apply.resumed', { stack: a.stack, apply_id: a.id }, 'warn');
      this.launch(a, p);
      resumed.push(a.id);
    }
    return resumed;
  }

  startResuming(intervalMs: number): void {
    const tick = () => void this.resumeInterrupted().catch((err) => this.o.logger.warn({ err }, 'could not look for interrupted applies'));
    tick();
    this.resumeTimer = setInterval(tick, intervalMs);
    this.resumeTimer.unref();
  }

  /** Compare every applied stack with live state now (stacks being applied are skipped); drift emits `stack.drifted`. */
  async checkDrift(): Promise<DriftRecord[]> {
    const out: DriftRecord[] = [];
    for (const s of await this.o.store.listStacks()) {
      if (!s.desired || s.status === 'applying' || s.status === 'destroyed') continue;
      const lease = await this.o.store.readLease(s.name);
      if (lease && lease.still_ms < this.o.leaseStaleMs) continue;
      let rec: DriftRecord;
      try {
        const d = await this.drift(s.name);
        rec = {
          stack: s.name,
          checked_at: d.checked_at,
          in_sync: d.in_sync,
          differences: d.differences.map((x) => ({ id: x.id, problem: x.problem })),
        };
        if (!d.in_sync && s.desired.reconcile && s.status === 'applied') rec.reconcile = await this.reconcile(s);
      } catch (err) {
        rec = { stack: s.name, checked_at: now(), in_sync: false, differences: [], error: (err as Error).message };
      }
      const prev = await this.o.store.getDrift(s.name);
      const last = rec.reconcile ? { ...rec.reconcile, at: rec.checked_at } : prev?.last_reconcile;
      if (last) rec.last_reconcile = last;
      await this.o.store.putDrift(rec);
      out.push(rec);
    }
    return out;
  }

  /**
   * `reconcile: true` in the file: drift is repaired by planning the applied file again and
   * applying it, unless that needs destructive or unsupported steps (those wait for an operator).
   */
  private async reconcile(s: StackRecord): Promise<NonNullable<DriftRecord['reconcile']>> {
    const p = await this.plan(s.name, s.desired as StackFile, s.source ?? '', 'reconcile');
    const held = p.steps.filter((st) => st.destructive || st.unsupported);
    if (held.length > 0) {
      this.o.emit('stack.reconcile_held', { stack: s.name, plan_id: p.id, steps: held.map((st) => st.id) }, 'warn');
      return { plan_id: p.id, held: held.map((st) => st.id) };
    }
    const a = await this.apply(s.name, p.id, 'rollback');
    this.o.emit('stack.reconciling', { stack: s.name, plan_id: p.id, apply_id: a.id }, 'warn');
    return { plan_id: p.id, apply_id: a.id };
  }

  /** Periodic drift checks, on the replica holding the drift lease only (drift-scheduler.ts). */
  startDriftChecks(intervalMs: number): void {
    if (intervalMs <= 0) return;
    this.driftChecks = new DriftScheduler(this.o.store.kv, this.owner, intervalMs, () => this.checkDrift(), this.o.logger);
    this.driftChecks.start();
  }

  lastDrift(stack: string) {
    return this.o.store.getDrift(stack);
  }

  /** A stack's applies, newest first. */
  async applies(stack: string): Promise<ApplyRecord[]> {
    return (await this.o.store.listApplies()).filter((a) => a.stack === stack).sort((x, y) => y.created_at.localeCompare(x.created_at));
  }

  /**
   * Plans and applies older than `retentionMs` leave the bucket; a running apply, the plan it
   * runs and each stack's last apply stay.
   */
  async prune(retentionMs: number): Promise<{ plans: number; applies: number }> {
    const cutoff = new Date(Date.now() - retentionMs).toISOString();
    const keep = new Set<string>();
    for (const s of await this.o.store.listStacks()) if (s.last_apply) keep.add(s.last_apply.id).add(s.last_apply.plan_id);
    let applies = 0;
    for (const a of await this.o.store.listApplies()) {
      if (a.status === 'running') keep.add(a.plan_id);
      if (a.status === 'running' || keep.has(a.id) || a.created_at >= cutoff) continue;
      await this.o.store.kv.delete(`apply.${a.id}`);
      applies++;
    }
    let plans = 0;
    for (const { key } of await this.o.store.keys('plan.')) {
      const p = await this.o.store.getPlan(key.slice('plan.'.length));
      if (!p || p.status === 'applying' || keep.has(p.id) || p.created_at >= cutoff) continue;
      await this.o.store.kv.delete(key);
      plans++;
    }
    if (plans + applies > 0) this.o.logger.info({ plans, applies }, 'old plans and applies pruned');
    return { plans, applies };
  }

  startPruning(retentionMs: number, everyMs = 3_600_000): void {
    const tick = () => void this.prune(retentionMs).catch((err) => this.o.logger.warn({ err }, 'could not prune old plans'));
    this.pruneTimer = setInterval(tick, everyMs);
    this.pruneTimer.unref();
  }

  /** Stop like a crash would: running applies stay `running` in KV for the next orchestrator. */
  async stop(): Promise<void> {
    if (this.resumeTimer) clearInterval(this.resumeTimer);
    await this.driftChecks?.stop();
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    this.stopping.abort(new Error('the orchestrator is stopping'));
    await Promise.allSettled([...this.running.values()]);
    await this.o.store.close().catch(() => undefined);
  }

  /** Deploy to `to` the images that run in `from`, for every service both environments have. */
  async promote(name: string, from: string, to: string, project?: string) {
    if (from === to)
      throw new InvalidRequest('promote needs two different environments', { fields: [{ path: 'to', message: 'equals from' }] });
    const s = await this.stack(name);
    if (!s.desired) throw new Conflict(`stack '${name}' has never been applied`);
    const file: StackFile = structuredClone(s.desired);
    const desired = desiredResources(name, file);
    const obs = await observe(this.o.mesh, name, desired, s.managed);
    const images: Array<{ project: string; service: string; image: string; was: string }> = [];
    for (const [p, proj] of Object.entries(file.projects)) {
      if (project && p !== project) continue;
      const src = proj.environments[from];
      const dst = proj.environments[to];
      if (!src || !dst) continue;
      for (const [svc, def] of Object.entries(dst.services)) {
        if (!src.services[svc]) continue;
        const running = obs.live[`release/${p}/${from}/${svc}`];
        if (!running) throw new Conflict(`${p}/${svc} does not run in '${from}': nothing to promote`);
        if (typeof running.attrs.image !== 'string')
          throw new Conflict(
            `${p}/${svc} in '${from}' was built from ${running.attrs.git ? 'git' : 'an upload'}: promote copies images only (set the same git ref in '${to}' instead)`,
          );
        const image = running.attrs.image;
        images.push({ project: p, service: svc, image, was: def.image ?? sourceText({ git: def.git }) });
        def.image = image;
        delete def.git;
      }
    }
    if (images.length === 0)
      throw new InvalidRequest(`no service exists in both '${from}' and '${to}'${project ? ` of project '${project}'` : ''}`, {
        fields: [{ path: 'to', message: 'no common services' }],
      });
    const p = await this.plan(name, file, JSON.stringify(file), 'promote');
    const other = p.steps.filter((st) => !(st.kind === 'release' && st.id.split('/')[2] === to));
    if (other.length > 0)
      throw new Conflict('the stack has changes besides the promotion (drift or an unapplied file): apply or plan them first', {
        steps: other.map((st) => ({ id: st.id, action: st.action })),
      });
    return { plan: p, images };
  }
}

export const isDestroyable = (s: StackRecord) => Object.keys(s.managed).length > 0 || s.desired !== null;
export { StackFileError };
