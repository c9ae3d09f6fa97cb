import type { Bus, Logger } from '@droplet-mesh/udc-kit';
import { FINAL_STATUSES, type Deployment, type DeploymentStatus, type ProgressEvent, type StepRecord } from '../domain/model.js';
import { redactValues } from '../domain/redact.js';
import type { Stores } from '../store/stores.js';

export const progressSubject = (deploymentId: string) => `deployer.progress.${deploymentId}`;
const MAX_EVENTS = 400;
const FLUSH_MS = 300;

/**
 * A deployment's record and its progress stream: every event goes out on NATS at once
 * (so any replica can stream it) and into the KV record (so a late reader can replay it).
 */
export class DeploymentTracker {
  private flushTimer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private secretValues: string[] = [];
  /** Whether this tracker has written the deployment's open-index entry (or removed it once final). */
  private indexed = false;
  private unindexed = false;

  constructor(
    readonly d: Deployment,
    private stores: Stores,
    private bus: Bus,
    private logger: Logger,
  ) {}

  /** Values that must never appear in a log line or event. */
  hideValues(values: string[]): void {
    this.secretValues = values;
  }

  redact(text: string): string {
    return redactValues(text, this.secretValues);
  }

  private push(e: Omit<ProgressEvent, 'seq' | 'deployment_id' | 'time' | 'percent'>): void {
    const last = this.d.events[this.d.events.length - 1];
    const event: ProgressEvent = {
      seq: (last?.seq ?? 0) + 1,
      deployment_id: this.d.id,
      time: new Date().toISOString(),
      percent: this.d.percent,
      ...e,
    };
    this.d.events.push(event);
    if (this.d.events.length > MAX_EVENTS) this.d.events.splice(0, this.d.events.length - MAX_EVENTS);
    if (this.bus.isConnected()) this.bus.publishJson(progressSubject(this.d.id), event);
  }

  log(line: string): void {
    this.push({ type: 'log', step: this.d.step, message: this.redact(line).slice(0, 2000) });
    this.scheduleFlush();
  }

  startStep(name: string): StepRecord {
    const step: StepRecord = { name, status: 'running', started_at: new Date().toISOString() };
    this.d.steps.push(step);
    this.d.step = name;
    this.push({ type: 'step', step: name, step_status: 'running' });
    return step;
  }

  endStep(step: StepRecord, status: StepRecord['status'], percent: number, detail?: string): void {
    step.status = status;
    step.finished_at = new Date().toISOString();
    step.duration_ms = Date.parse(step.finished_at) - Date.parse(step.started_at);
    if (detail) step.detail = this.redact(detail).slice(0, 1000);
    if (status === 'succeeded' || status === 'skipped') this.d.percent = Math.max(this.d.percent, percent);
    this.push({ type: 'step', step: step.name, step_status: status, message: step.detail });
  }

  setStatus(status: DeploymentStatus, reason?: string): void {
    this.d.status = status;
    if (reason) this.d.reason = this.redact(reason).slice(0, 2000);
    if (status === 'succeeded') this.d.percent = 100;
    if (status !== 'queued' && status !== 'running') this.d.finished_at = new Date().toISOString();
    this.push({ type: 'status', status, message: this.d.reason });
  }

  private scheduleFlush(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.save();
    }, FLUSH_MS);
    this.flushTimer.unref();
  }

  /**
   * Writes are chained so an older snapshot never lands after a newer one. An unfinished
   * deployment is in the open index before its record says so; a final one leaves the
   * index after its record says so (a crash in between leaves an entry recovery discards).
   */
  save(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    const snapshot = JSON.parse(JSON.stringify(this.d)) as Deployment;
    const final = FINAL_STATUSES.has(snapshot.status);
    this.writing = this.writing
      .then(async () => {
        if (!final && !this.indexed) {
          await this.stores.openDeployments.put([snapshot.id], {
            id: snapshot.id,
            target_id: snapshot.target_id,
            owner: snapshot.owner,
            created_at: snapshot.created_at,
          });
          this.indexed = true;
        }
        await this.stores.deployments.put([snapshot.id], snapshot);
        if (final && !this.unindexed) {
          await this.stores.openDeployments.purge(snapshot.id);
          this.unindexed = true;
        }
      })
      .catch((err) => this.logger.error({ err, deployment_id: this.d.id }, 'could not record deployment'));
    return this.writing;
  }
}
