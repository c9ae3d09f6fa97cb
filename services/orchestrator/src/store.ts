import type { KV } from '@nats-io/kv';
import { RevisionAges } from '@droplet-mesh/udc-kit';
import { KeyView } from '@droplet-mesh/udc-kit';
import type { PlanResult, Step } from './domain/planner.js';
import type { LiveState, Managed } from './domain/resources.js';
import type { StackFile } from './domain/stack-schema.js';

/** The one KV bucket the orchestrator's NATS user may write (packages/udc-kit/src/nats-auth.ts). */
export const BUCKET = 'orchestrator';

export type StackStatus = 'planned' | 'applying' | 'applied' | 'failed' | 'rolled_back' | 'stopped' | 'partial' | 'destroyed';

export interface StackRecord {
  name: string;
  /** Bumped when an apply starts and ends: a plan made before is stale. */
  revision: number;
  status: StackStatus;
  /** The file of the last successful apply (null before one). */
  desired: StackFile | null;
  source: string | null;
  managed: Managed;
  last_apply?: { id: string; plan_id: string; status: ApplyStatus; started_at: string; finished_at?: string; destroy: boolean };
  created_at: string;
  updated_at: string;
}

export interface PlanRecord extends PlanResult {
  id: string;
  stack: string;
  kind: 'apply' | 'destroy' | 'promote' | 'reconcile';
  created_at: string;
  stack_revision: number;
  live_revision: string;
  live: LiveState;
  file: StackFile;
  source: string;
  warnings: string[];
  status: 'pending' | 'applying' | 'applied';
}

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped';
export type ApplyStatus = 'running' | 'succeeded' | 'partial' | 'failed' | 'rolled_back';

export interface StepState extends Step {
  status: StepStatus;
  started_at?: string;
  finished_at?: string;
  detail?: string;
  error?: { code?: string; message: string; status?: number };
  /** A deploy started by this step (a resumed apply waits for it instead of deploying again). */
  deployment_id?: string;
  /** The instance a server step created. */
  created_ref?: { provider: string; provider_id: string };
  /** Deployer servers a placement step made serve the environment (undo takes them back). */
  assigned_added?: string[];
}

export interface UndoEntry {
  n: number;
  id: string;
  action: string;
  result: 'undone' | 'not_undone' | 'undo_failed';
  detail: string;
}

export interface ApplyRecord {
  id: string;
  stack: string;
  plan_id: string;
  kind: PlanRecord['kind'];
  on_failure: 'rollback' | 'stop';
  status: ApplyStatus;
  owner: string;
  steps: StepState[];
  failed_step?: { n: number; id: string; error: string };
  undo: UndoEntry[];
  /** Steps that could not run (no API for them) and what they leave behind. */
  not_done: Array<{ n: number; id: string; reason: string }>;
  resumed: number;
  created_at: string;
  finished_at?: string;
}

/** The last periodic drift check of a stack. */
export interface DriftRecord {
  stack: string;
  checked_at: string;
  in_sync: boolean;
  differences: Array<{ id: string; problem: string }>;
  /** With `reconcile: true`: the repair started, or the steps held for an operator. */
  reconcile?: { plan_id: string; apply_id?: string; held?: string[] };
  /** The latest repair, kept by later checks. */
  last_reconcile?: { plan_id: string; apply_id?: string; held?: string[]; at: string };
  error?: string;
}

export interface Lease {
  apply_id: string;
  owner: string;
  at: number;
}

/** A deleted or purged key reads as absent (its entry has no value). */
const dec = <T>(v: { json<X>(): X; operation: string } | null | undefined): T | undefined =>
  v && v.operation === 'PUT' ? v.json<T>() : undefined;

/** Stacks, plans, applies and the per-stack apply lease, as JSON values in the bucket. */
export class Store {
  /** How long each lease has stood still as seen here: leases are judged by this, never by the `at` another machine wrote. */
  private leaseAges = new RevisionAges();

  constructor(readonly kv: KV) {}

  /**
   * Live keys under `prefix`, from udc-kit's watched key view: `kv.keys()` can wait up to
   * 30 s when a matching key is purged while it runs (issue 16).
   */
  keys(prefix: string): Promise<Array<{ key: string; revision: number }>> {
    return KeyView.of(this.kv).keys(prefix);
  }

  /** Stop the key view's watch. */
  async close(): Promise<void> {
    await KeyView.of(this.kv).stop();
  }

  async getStack(name: string): Promise<StackRecord | undefined> {
    return dec<StackRecord>(await this.kv.get(`stack.${name}`));
  }
  async putStack(s: StackRecord): Promise<void> {
    s.updated_at = new Date().toISOString();
    await this.kv.put(`stack.${s.name}`, JSON.stringify(s));
  }
  async listStacks(): Promise<StackRecord[]> {
    const out: StackRecord[] = [];
    for (const { key } of await this.keys('stack.')) {
      const s = await this.getStack(key.slice('stack.'.length));
      if (s) out.push(s);
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  async getPlan(id: string): Promise<PlanRecord | undefined> {
    return dec<PlanRecord>(await this.kv.get(`plan.${id}`));
  }
  async putPlan(p: PlanRecord): Promise<void> {
    await this.kv.put(`plan.${p.id}`, JSON.stringify(p));
  }

  async getApply(id: string): Promise<ApplyRecord | undefined> {
    return dec<ApplyRecord>(await this.kv.get(`apply.${id}`));
  }
  async putApply(a: ApplyRecord): Promise<void> {
    await this.kv.put(`apply.${a.id}`, JSON.stringify(a));
  }
  async listApplies(): Promise<ApplyRecord[]> {
    const out: ApplyRecord[] = [];
    for (const { key } of await this.keys('apply.')) {
      const a = await this.getApply(key.slice('apply.'.length));
      if (a) out.push(a);
    }
    return out;
  }

  async getDrift(stack: string): Promise<DriftRecord | undefined> {
    return dec<DriftRecord>(await this.kv.get(`drift.${stack}`));
  }
  async putDrift(d: DriftRecord): Promise<void> {
    await this.kv.put(`drift.${d.stack}`, JSON.stringify(d));
  }

  /** Take the stack's apply lease: false when another live apply holds it. */
  async acquireLease(stack: string, lease: Lease, staleMs: number): Promise<boolean> {
    const key = `lease.${stack}`;
    try {
      await this.kv.create(key, JSON.stringify(lease));
      return true;
    } catch {
      const e = await this.kv.get(key);
      if (e?.operation !== 'PUT') {
        try {
          await this.kv.put(key, JSON.stringify(lease), { previousSeq: e?.revision ?? 0 });
          return true;
        } catch {
          return false;
        }
      }
      const held = e.json<Lease>();
      if (held.apply_id !== lease.apply_id && this.leaseAges.observe(key, e.revision) < staleMs) return false;
      try {
        await this.kv.put(key, JSON.stringify(lease), { previousSeq: e.revision });
        return true;
      } catch {
        return false;
      }
    }
  }
  /** The stack's lease and `still_ms`: how long it has gone unrenewed as measured here (monotonic, from when this process first saw its revision). */
  async readLease(stack: string): Promise<(Lease & { still_ms: number }) | undefined> {
    const key = `lease.${stack}`;
    const e = await this.kv.get(key);
    return e && e.operation === 'PUT' ? { ...e.json<Lease>(), still_ms: this.leaseAges.observe(key, e.revision) } : undefined;
  }
  /** Renew only the lease this apply still holds (compare-and-set): a taken-over lease is never overwritten. */
  async renewLease(stack: string, lease: Lease): Promise<boolean> {
    const key = `lease.${stack}`;
    const e = await this.kv.get(key);
    const held = e && e.operation === 'PUT' ? e.json<Lease>() : undefined;
    if (!e || held?.apply_id !== lease.apply_id || held.owner !== lease.owner) return false;
    await this.kv.put(key, JSON.stringify({ ...lease, at: Date.now() }), { previousSeq: e.revision });
    return true;
  }
  async releaseLease(stack: string, applyId: string): Promise<void> {
    const l = await this.readLease(stack);
    if (l?.apply_id === applyId) await this.kv.delete(`lease.${stack}`);
  }
}
