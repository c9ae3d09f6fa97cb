import cliProgress from 'cli-progress';

/** One event of the deployer's progress stream (`GET /deployments/{id}/events`). */
export interface ProgressEvent {
  seq?: number;
  deployment_id?: string;
  type: 'step' | 'log' | 'status';
  time?: string;
  percent?: number;
  step?: string;
  step_status?: 'running' | 'succeeded' | 'failed' | 'skipped';
  message?: string;
  status?: string;
}

export const FINAL_STATUSES: ReadonlySet<string> = new Set(['succeeded', 'failed', 'interrupted', 'rolled_back']);

export interface ProgressState {
  percent: number;
  step: string;
  status: string;
}

/** How progress is shown: a live bar on a terminal, plain lines in a log or a pipe. */
export interface ProgressRenderer {
  update(state: ProgressState): void;
  /** A line above the bar (step results, log lines). */
  note(line: string): void;
  stop(): void;
}

const STEP_MARK: Record<string, string> = { succeeded: 'ok', failed: 'FAILED', skipped: 'skipped' };

/**
 * Folds the event stream into what the operator sees. Events may be replayed after a
 * reconnect: anything at or below the last sequence number is ignored.
 */
export class DeployProgress {
  readonly state: ProgressState = { percent: 0, step: '-', status: 'queued' };
  final: { status: string; message?: string } | undefined;
  private lastSeq = 0;
  private stepStarted = new Map<string, number>();

  constructor(
    private renderer: ProgressRenderer,
    private opts: { verbose?: boolean } = {},
  ) {}

  /** Returns true once the deployment reached a final status. */
  apply(e: ProgressEvent): boolean {
    if (this.final) return true;
    if (typeof e.seq === 'number') {
      if (e.seq <= this.lastSeq) return false;
      this.lastSeq = e.seq;
    }
    if (typeof e.percent === 'number' && e.percent >= 0 && e.percent <= 100) this.state.percent = Math.max(this.state.percent, e.percent);
    if (e.type === 'step' && e.step) {
      if (e.step_status === 'running') {
        this.state.step = e.step;
        if (this.state.status === 'queued') this.state.status = 'running';
        if (e.time) this.stepStarted.set(e.step, Date.parse(e.time));
      } else if (e.step_status) {
        const started = this.stepStarted.get(e.step);
        const took = started !== undefined && e.time ? ` (${((Date.parse(e.time) - started) / 1000).toFixed(1)}s)` : '';
        this.renderer.note(
          `  ${e.step}: ${STEP_MARK[e.step_status] ?? e.step_status}${took}${e.message && e.step_status === 'failed' ? ` - ${e.message}` : ''}`,
        );
      }
    } else if (e.type === 'log' && e.message !== undefined && this.opts.verbose) {
      this.renderer.note(`  | ${e.message}`);
    } else if (e.type === 'status' && e.status) {
      this.state.status = e.status;
      if (e.status === 'succeeded') this.state.percent = 100;
      if (FINAL_STATUSES.has(e.status)) this.final = { status: e.status, ...(e.message ? { message: e.message } : {}) };
    }
    this.renderer.update({ ...this.state });
    return !!this.final;
  }

  stop(): void {
    this.renderer.stop();
  }
}

/** A cli-progress bar; notes are printed above it. */
export function barRenderer(stream: NodeJS.WritableStream & { isTTY?: boolean }): ProgressRenderer {
  const multi = new cliProgress.MultiBar(
    {
      stream: stream as NodeJS.WriteStream,
      format: ' {bar} {percentage}% | {step} | {status}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 30,
      // Keep the bar off the terminal's SIGINT handling: bin.ts decides what Ctrl-C does.
      gracefulExit: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const bar = multi.create(100, 0, { step: '-', status: 'queued' });
  let stopped = false;
  return {
    update: (s) => bar.update(s.percent, { step: s.step, status: s.status }),
    note: (line) => multi.log(`${line}\n`),
    stop: () => {
      if (stopped) return;
      stopped = true;
      // stop() drops notes still buffered for the next redraw: draw once more first.
      multi.update();
      multi.stop();
    },
  };
}

/** One line per change of step or status, for logs and pipes. */
export function lineRenderer(stream: NodeJS.WritableStream): ProgressRenderer {
  let last = '';
  return {
    update: (s) => {
      const key = `${s.step}|${s.status}`;
      if (key === last) return;
      last = key;
      stream.write(`[${String(s.percent).padStart(3)}%] ${s.step} ${s.status}\n`);
    },
    note: (line) => stream.write(`${line}\n`),
    stop: () => undefined,
  };
}

export function rendererFor(stream: NodeJS.WritableStream & { isTTY?: boolean }): ProgressRenderer {
  return stream.isTTY ? barRenderer(stream) : lineRenderer(stream);
}
