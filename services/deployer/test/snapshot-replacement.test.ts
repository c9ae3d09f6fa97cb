import { describe, expect, it } from '@jest/globals';
import { createLogger } from '@droplet-mesh/udc-kit';
import { replacementId, SnapshotReplacement, type SnapshotReplacementDeps } from '../src/deploy/snapshot-replacement.js';
import type { PendingServer } from '../src/domain/provisioning.js';

// The ways a replacement from a snapshot does not happen: each is said on the timeline with
// the move as the fallback, and nothing is redeployed onto a machine that is not there.
const lost = { id: 'web-1', instance_id: 'hetzner:42', environments: ['prod'] };
const snapshots = [{ id: '9002', name: 'newest' }];

function harness(over: { reply?: unknown; provision?: () => Promise<unknown>; pending?: PendingServer['status']; onItsWay?: boolean }) {
  const notes: Array<{ event: string; detail: Record<string, unknown> }> = [];
  const deploys: string[] = [];
  let provisioned = !!over.onItsWay;
  const deps = {
    stores: {
      servers: { get: async (id: string) => (id === lost.id ? lost : undefined), list: async () => [lost] },
      releases: { list: async () => [] },
      deployments: { get: async () => undefined },
    },
    deployer: () => ({ requestDeploy: async (r: { service: string }) => void deploys.push(r.service) }),
    send: async () => over.reply ?? { result: 'success', data: { instance: { region: 'fsn1', size: 'cx22' }, snapshots } },
    provision:
      over.provision ??
      (async () => {
        provisioned = true;
      }),
    // Only the replacement has a provisioning record, once asked for.
    pending: async (id: string) =>
      !provisioned || !over.pending ? undefined : ({ id, status: over.pending, reason: 'no ready report within 1 s' } as PendingServer),
    note: async (_id: string, event: string, detail: Record<string, unknown>) => void notes.push({ event, detail }),
    emit: () => undefined,
    logger: createLogger('test', 'silent').logger,
    waitMs: 300,
    pollMs: 20,
  } as unknown as SnapshotReplacementDeps;
  return { r: new SnapshotReplacement(deps), notes, deploys };
}

describe('replacing a lost server from its snapshot', () => {
  it('names the replacement next to the lost server, the first free number', () => {
    expect(replacementId('web-1', new Set(['web-1']))).toBe('web-1-r1');
    expect(replacementId('web-1-r1', new Set(['web-1-r1', 'web-1-r2']))).toBe('web-1-r3');
    expect(replacementId('x'.repeat(63), new Set()).length).toBeLessThanOrEqual(63);
  });

  it('no snapshot: replacement.failed, the move stands', async () => {
    const h = harness({ reply: { result: 'success', data: { instance: { region: 'fsn1', size: 'cx22' }, snapshots: [] } } });
    expect(await h.r.replace(lost.id, ['t'], 'health-monitor')).toEqual({
      replaced: false,
      reason: 'no snapshot of instance hetzner:42 at hetzner',
    });
    expect(h.notes).toEqual([{ event: 'replacement.failed', detail: expect.objectContaining({ fallback: 'move' }) }]);
  });

  it('provisioning cannot start (no DEPLOYER_PUBLIC_URL, …): the reason on the timeline, nothing redeployed', async () => {
    const h = harness({
      provision: async () => {
        throw new Error('DEPLOYER_PUBLIC_URL is not set');
      },
    });
    const out = await h.r.replace(lost.id, ['t'], 'health-monitor');
    expect(out).toEqual({ replaced: false, reason: 'the replacement web-1-r1 could not be provisioned: DEPLOYER_PUBLIC_URL is not set' });
    expect(h.notes.map((n) => n.event)).toEqual(['replacement.provisioning', 'replacement.failed']);
    expect(h.notes[0].detail).toMatchObject({ replacement_id: 'web-1-r1', snapshot: { id: '9002' }, region: 'fsn1', size: 'cx22' });
    expect(h.deploys).toEqual([]);
  });

  it('the provider refuses the create or the machine never reports (its provisioning fails with the reason) and the move stands; a wait with no answer at all ends too', async () => {
    const failed = harness({ pending: 'failed' });
    expect(await failed.r.replace(lost.id, ['t'], 'x')).toMatchObject({
      replaced: false,
      reason: expect.stringMatching(/no ready report within 1 s/),
    });
    expect(failed.notes.map((n) => n.event)).toEqual(['replacement.provisioning', 'replacement.failed']);
    const silent = harness({ pending: 'waiting_for_callback' });
    expect(await silent.r.replace(lost.id, ['t'], 'x')).toMatchObject({
      replaced: false,
      reason: expect.stringMatching(/not ready within 0 s/),
    });
    expect(silent.deploys).toEqual([]);
  });

  it('the same loss told again while its replacement is on its way: no second replacement', async () => {
    const h = harness({ pending: 'waiting_for_callback', onItsWay: true });
    expect(await h.r.replace(lost.id, ['t'], 'x')).toEqual({
      replaced: false,
      reason: 'replacement web-1-r1 is already being provisioned',
    });
    expect(h.notes).toEqual([]);
  });

  it('multi-cloud-manager refuses or is away: said, with the move as fallback', async () => {
    const h = harness({ reply: { result: 'error', error: { message: 'hetzner did not list its snapshots' } } });
    expect(await h.r.replace(lost.id, ['t'], 'x')).toMatchObject({
      reason: expect.stringMatching(/could not list the snapshots: hetzner did not/),
    });
    expect(h.notes[0].detail).toMatchObject({ fallback: 'move' });
  });
});
