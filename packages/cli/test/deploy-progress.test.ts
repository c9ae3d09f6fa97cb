import { describe, expect, it } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { barRenderer, DeployProgress, lineRenderer, type ProgressEvent } from '../src/deploy-progress.js';

function sink(tty = false) {
  const s = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  let text = '';
  s.on('data', (d) => (text += String(d)));
  if (tty) {
    s.isTTY = true;
    s.columns = 120;
  }
  return { stream: s, text: () => text };
}

const t = (s: number) => new Date(Date.UTC(2026, 10, 1, 0, 0, s)).toISOString();
const events: ProgressEvent[] = [
  { seq: 1, type: 'step', step: 'pull', step_status: 'running', percent: 0, time: t(0) },
  { seq: 2, type: 'log', step: 'pull', message: 'pulling busybox', percent: 0, time: t(1) },
  { seq: 3, type: 'step', step: 'pull', step_status: 'succeeded', percent: 30, time: t(2) },
  { seq: 4, type: 'step', step: 'start', step_status: 'running', percent: 30, time: t(2) },
  { seq: 5, type: 'step', step: 'start', step_status: 'failed', message: 'container exited with code 1', percent: 30, time: t(5) },
  { seq: 6, type: 'status', status: 'failed', message: 'start: container exited with code 1', percent: 30, time: t(5) },
];

describe('DeployProgress', () => {
  it('folds step, log and status events into percent, step and a final status', () => {
    const out = sink();
    const p = new DeployProgress(lineRenderer(out.stream));
    const finals = events.map((e) => p.apply(e));
    expect(finals).toEqual([false, false, false, false, false, true]);
    expect(p.final).toEqual({ status: 'failed', message: 'start: container exited with code 1' });
    expect(p.state).toEqual({ percent: 30, step: 'start', status: 'failed' });
    const text = out.text();
    expect(text).toContain('[  0%] pull running');
    expect(text).toContain('  pull: ok (2.0s)');
    expect(text).toContain('  start: FAILED (3.0s) - container exited with code 1');
    expect(text).toContain('[ 30%] start failed');
    expect(text).not.toContain('pulling busybox'); // log lines only with --verbose
  });

  it('shows log lines when verbose', () => {
    const out = sink();
    const p = new DeployProgress(lineRenderer(out.stream), { verbose: true });
    for (const e of events) p.apply(e);
    expect(out.text()).toContain('  | pulling busybox');
  });

  it('ignores events replayed after a reconnect, and anything after the final status', () => {
    const out = sink();
    const p = new DeployProgress(lineRenderer(out.stream));
    for (const e of events.slice(0, 3)) p.apply(e);
    const before = out.text();
    for (const e of events.slice(0, 3)) p.apply(e);
    expect(out.text()).toBe(before);
    for (const e of events.slice(3)) p.apply(e);
    expect(p.apply({ seq: 7, type: 'status', status: 'succeeded' })).toBe(true);
    expect(p.final?.status).toBe('failed');
  });

  it('a success ends at 100% even if the last step event said less', () => {
    const p = new DeployProgress(lineRenderer(sink().stream));
    p.apply({ seq: 1, type: 'step', step: 'switch', step_status: 'running', percent: 80 });
    expect(p.apply({ seq: 2, type: 'status', status: 'succeeded' })).toBe(true);
    expect(p.state.percent).toBe(100);
  });

  it('drives a live cli-progress bar on a terminal, with step results printed above it', async () => {
    const out = sink(true);
    const p = new DeployProgress(barRenderer(out.stream));
    for (const e of events.slice(0, 4)) p.apply(e);
    p.apply({ seq: 5, type: 'step', step: 'start', step_status: 'succeeded', percent: 90, time: t(3) });
    p.apply({ seq: 6, type: 'status', status: 'succeeded', time: t(3) });
    p.stop();
    await new Promise((r) => setImmediate(r));
    const text = out.text();
    expect(text).toMatch(/100% \| start \| succeeded/);
    expect(text).toContain('pull: ok (2.0s)');
    expect(text).toContain('start: ok (1.0s)');
  });
});
