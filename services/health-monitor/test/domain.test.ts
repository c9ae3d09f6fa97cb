import { describe, expect, it } from '@jest/globals';
import { ConfigError, parseConfig } from '@droplet-mesh/udc-kit';
import { configSchema } from '../src/config.js';
import { assignMonitors, rendezvousRank } from '../src/domain/rendezvous.js';
import { decideVerdict, quorumSize, type SeenObservation } from '../src/domain/verdict.js';
import { uptimePercent } from '../src/domain/uptime.js';
import { escalatePast, initialRecovery, markExhausted, planRecovery, recordAttempt } from '../src/domain/recovery-plan.js';
import type { RegistryRecord } from '@droplet-mesh/udc-kit';
import type { Incident, Observation, RecoveryStep, Target } from '../src/domain/types.js';
import { recoveryRequest } from '../src/engine/recovery-worker.js';
import { targetFromRecord } from '../src/targets/target-source.js';
import { fromKeyPart, keyPart } from '../src/store/keys.js';

describe('rendezvous assignment', () => {
  const members = ['m1', 'm2', 'm3', 'm4', 'm5'];
  const targets = Array.from({ length: 500 }, (_, i) => `t${i}`);

  it('picks k distinct monitors, the same whatever order members are listed in', () => {
    for (const t of targets.slice(0, 50)) {
      const a = assignMonitors(t, members, 3);
      expect(new Set(a).size).toBe(3);
      expect(assignMonitors(t, [...members].reverse(), 3)).toEqual(a);
    }
  });

  it('gives every monitor when fewer than k are alive', () => {
    expect(assignMonitors('x', ['m1', 'm2'], 3).sort()).toEqual(['m1', 'm2']);
    expect(assignMonitors('x', [], 3)).toEqual([]);
  });

  it('moves only the targets the leaving monitor held, and spreads load', () => {
    const before = new Map(targets.map((t) => [t, assignMonitors(t, members, 3)]));
    const after = new Map(
      targets.map((t) => [
        t,
        assignMonitors(
          t,
          members.filter((m) => m !== 'm3'),
          3,
        ),
      ]),
    );
    for (const t of targets) {
      const b = before.get(t)!;
      const a = after.get(t)!;
      if (!b.includes('m3')) expect(a).toEqual(b);
      else expect(a.filter((m) => b.includes(m)).length).toBe(2);
    }
    const load = new Map<string, number>();
    for (const a of before.values()) for (const m of a) load.set(m, (load.get(m) ?? 0) + 1);
    for (const m of members) expect(load.get(m)).toBeGreaterThan(200); // 300 each on average
  });

  it('ranks deterministically', () => {
    expect(rendezvousRank('t1', members)).toEqual(rendezvousRank('t1', members));
  });
});

describe('quorum verdict', () => {
  const params = { windowMs: 3000, failsToSuspect: 2, oksToRecover: 3 };
  const now = 100_000;
  const url = 'http://127.0.0.1:2001/health';
  const obs = (monitor: string, o: Partial<Observation>, age = 0): [string, SeenObservation] => [
    monitor,
    {
      receivedAt: now - age,
      obs: {
        monitor_id: monitor,
        target_id: 't',
        url,
        ok: false,
        at: '',
        latency_ms: 1,
        consecutive_failures: 0,
        consecutive_successes: 0,
        monitor_degraded: false,
        ...o,
      },
    },
  ];
  const failing = { ok: false, consecutive_failures: 2 };
  const good = { ok: true, consecutive_successes: 3 };
  const assigned = ['a', 'b', 'c'];

  it('needs a majority of the assigned monitors', () => {
    expect(quorumSize(1)).toBe(1);
    expect(quorumSize(2)).toBe(2);
    expect(quorumSize(3)).toBe(2);
    expect(quorumSize(4)).toBe(3);
    expect(decideVerdict({ url, assigned, latest: new Map([obs('a', failing)]), currentlyDown: false, now, params })).toBe('hold');
    expect(
      decideVerdict({ url, assigned, latest: new Map([obs('a', failing), obs('b', failing)]), currentlyDown: false, now, params }),
    ).toBe('down');
  });

  it('ignores stale reports, single failures, unassigned monitors and degraded monitors', () => {
    expect(
      decideVerdict({ url, assigned, latest: new Map([obs('a', failing), obs('b', failing, 5000)]), currentlyDown: false, now, params }),
    ).toBe('hold');
    expect(
      decideVerdict({
        url,
        assigned,
        latest: new Map([obs('a', failing), obs('b', { ok: false, consecutive_failures: 1 })]),
        currentlyDown: false,
        now,
        params,
      }),
    ).toBe('hold');
    expect(
      decideVerdict({ url, assigned, latest: new Map([obs('a', failing), obs('z', failing)]), currentlyDown: false, now, params }),
    ).toBe('hold');
    expect(
      decideVerdict({
        url,
        assigned,
        latest: new Map([obs('a', failing), obs('b', { ...failing, monitor_degraded: true })]),
        currentlyDown: false,
        now,
        params,
      }),
    ).toBe('hold');
    // A lone monitor that cannot reach anything never declares down.
    expect(
      decideVerdict({
        url,
        assigned: ['a'],
        latest: new Map([obs('a', { ...failing, monitor_degraded: true })]),
        currentlyDown: false,
        now,
        params,
      }),
    ).toBe('hold');
  });

  it('counts toward up only checks received since the incident opened (one opened from an event had no failed check)', () => {
    const latest = new Map([obs('a', good, 800), obs('b', good, 200)]);
    expect(decideVerdict({ url, assigned, latest, currentlyDown: true, downSince: now - 500, now, params })).toBe('hold');
    expect(decideVerdict({ url, assigned, latest, currentlyDown: true, downSince: now - 900, now, params })).toBe('up');
  });

  it('declares up only after a run of good checks from a quorum (hysteresis)', () => {
    const flapping = { ok: true, consecutive_successes: 1 };
    expect(
      decideVerdict({ url, assigned, latest: new Map([obs('a', flapping), obs('b', flapping)]), currentlyDown: true, now, params }),
    ).toBe('hold');
    expect(decideVerdict({ url, assigned, latest: new Map([obs('a', good), obs('b', flapping)]), currentlyDown: true, now, params })).toBe(
      'hold',
    );
    expect(decideVerdict({ url, assigned, latest: new Map([obs('a', good), obs('b', good)]), currentlyDown: true, now, params })).toBe(
      'up',
    );
    expect(decideVerdict({ url, assigned, latest: new Map([obs('a', good), obs('b', good)]), currentlyDown: false, now, params })).toBe(
      'hold',
    );
  });
});

describe('quorum verdict across a move', () => {
  const params = { windowMs: 3000, failsToSuspect: 2, oksToRecover: 2 };
  const oldUrl = 'http://127.0.0.1:2001/health';
  const newUrl = 'http://127.0.0.1:2002/health';
  const seen = (monitor: string, url: string, ok: boolean): [string, SeenObservation] => [
    monitor,
    {
      receivedAt: 0,
      obs: {
        monitor_id: monitor,
        target_id: 't',
        url,
        ok,
        at: '',
        latency_ms: 1,
        consecutive_failures: ok ? 0 : 3,
        consecutive_successes: ok ? 3 : 0,
        monitor_degraded: false,
      },
    },
  ];

  it('counts only reports about the current address', () => {
    const stale = new Map([seen('a', oldUrl, false), seen('b', oldUrl, false), seen('c', newUrl, true)]);
    expect(decideVerdict({ assigned: ['a', 'b', 'c'], url: oldUrl, latest: stale, currentlyDown: false, now: 0, params })).toBe('down');
    expect(decideVerdict({ assigned: ['a', 'b', 'c'], url: newUrl, latest: stale, currentlyDown: false, now: 0, params })).toBe('hold');
    // An open incident ends on good reports of the new address, not of the old one.
    const recovered = new Map([seen('a', newUrl, true), seen('b', newUrl, true), seen('c', oldUrl, false)]);
    expect(decideVerdict({ assigned: ['a', 'b', 'c'], url: newUrl, latest: recovered, currentlyDown: true, now: 0, params })).toBe('up');
    expect(
      decideVerdict({
        assigned: ['a', 'b', 'c'],
        url: oldUrl,
        latest: new Map([seen('a', newUrl, true), seen('b', newUrl, true)]),
        currentlyDown: true,
        now: 0,
        params,
      }),
    ).toBe('hold');
  });
});

describe('uptime', () => {
  const H = 3600_000;
  it('counts only watched time and clips intervals to the window', () => {
    const now = 100 * H;
    expect(uptimePercent([], now - H, now, 24 * H)).toBe(100);
    expect(uptimePercent([{ from: now - 30 * 60_000, to: now - 15 * 60_000 }], now - H, now, 24 * H)).toBe(75);
    expect(uptimePercent([{ from: now - 48 * H, to: now - 12 * H }], 0, now, 24 * H)).toBe(50);
    expect(uptimePercent([{ from: now - 6 * H }], 0, now, 24 * H)).toBe(75);
    expect(uptimePercent([], now, now, 24 * H)).toBeNull();
  });
});

describe('recovery plan', () => {
  const params = { maxAttemptsPerStep: 2, backoffMs: 1000, backoffMaxMs: 3000 };
  const target = (metadata: Record<string, unknown> = {}, kind: Target['kind'] = 'service'): Target => ({
    id: 't',
    kind,
    url: 'http://127.0.0.1:1',
    health_path: '/health',
    recovery: ['restart', 'reboot', 'alert'],
    metadata,
    source: 'static',
  });

  it('restarts, backs off, then reboots, then alerts', () => {
    const t = target({ provider: 'local', instance_id: 'i-1' });
    let s = initialRecovery(t.recovery);
    let now = 0;
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const { state, decision } = planRecovery(s, t, now, params);
      if (decision.kind === 'wait') {
        now = decision.until;
        continue;
      }
      if (decision.kind === 'act') {
        seen.push(`${decision.step}#${decision.attempt}@${now}`);
        s = recordAttempt(state, now, params);
        continue;
      }
      seen.push(decision.kind);
      break;
    }
    expect(seen).toEqual(['restart#1@0', 'restart#2@1000', 'reboot#1@3000', 'reboot#2@6000', 'alert']);
  });

  it('skips reboot without provider metadata and stops when exhausted', () => {
    let s = initialRecovery(['reboot', 'restart']);
    const first = planRecovery(s, target(), 0, params);
    expect(first.decision).toEqual({ kind: 'act', step: 'restart', attempt: 1 });
    s = markExhausted(first.state);
    expect(planRecovery(s, target(), 0, params).decision.kind).toBe('done');
    expect(planRecovery(initialRecovery(['alert']), target(), 0, params).decision.kind).toBe('alert');
  });

  it('escalated past restart (a crash loop): the next step is due now, the alert says why, and only once', () => {
    const t = target({ provider: 'local', instance_id: 'i-1' });
    const waiting = recordAttempt(initialRecovery(t.recovery), 0, params); // a restart sent, its backoff running
    const escalated = escalatePast(waiting, 'restart', 'it crashed 5 times', 500);
    expect(planRecovery(waiting, t, 500, params).decision.kind).toBe('wait');
    expect(planRecovery(escalated, t, 500, params).decision).toEqual({ kind: 'act', step: 'reboot', attempt: 1 });
    expect(escalatePast(escalated, 'reboot', 'again', 600)).toBe(escalated);
    const alertOnly = escalatePast(initialRecovery(['restart', 'alert']), 'restart', 'it crashed 5 times', 0);
    expect(planRecovery(alertOnly, t, 0, params).decision).toEqual({ kind: 'alert', reason: 'it crashed 5 times' });
    expect(escalatePast(markExhausted(alertOnly), 'restart', 'x', 0).escalation).toBe('it crashed 5 times');
  });

  it('never asks the deployer to restart a host, even when its policy says so', () => {
    const host = target({ provider: 'hetzner', instance_id: 'n1' }, 'host');
    expect(planRecovery(initialRecovery(['restart', 'reboot', 'alert']), host, 0, params).decision).toEqual({
      kind: 'act',
      step: 'reboot',
      attempt: 1,
    });
    expect(planRecovery(initialRecovery(['restart', 'alert']), host, 0, params).decision).toEqual({
      kind: 'alert',
      reason: 'policy says alert only',
    });
  });

  it('reboots a host through multi-cloud-manager with the provider and instance id of its record', () => {
    const host = target({ provider: 'hetzner', instance_id: 'n1' }, 'host');
    const incident = { id: 'inc-1', target_id: 't' } as Incident;
    expect(recoveryRequest('reboot', incident, host, 'm1', 1000)).toMatchObject({
      target: 'multi-cloud-manager',
      message_type: 'command',
      payload: {
        action: 'instance.reboot',
        provider: 'hetzner',
        instance_id: 'n1',
        target_id: 't',
        incident_id: 'inc-1',
        requested_by: 'm1',
      },
    });
  });
});

describe('targets from registry records', () => {
  const policies = { service: ['restart', 'reboot', 'alert'] as RecoveryStep[], host: ['reboot', 'alert'] as RecoveryStep[] };
  const record = (r: Partial<RegistryRecord>): RegistryRecord => ({
    id: 'x',
    name: 'x',
    url: 'http://192.0.2.1',
    kind: 'service',
    capabilities: [],
    steward: 'multi-cloud-manager',
    status: 'active',
    registered_at: '2025-01-01T00:00:00.000Z',
    updated_at: '2025-01-01T00:00:00.000Z',
    ...r,
  });

  it('checks a host only where its record says it answers, and never restarts it by default', () => {
    const meta = { provider: 'hetzner', instance_id: 'n1' };
    expect(targetFromRecord(record({ kind: 'host', metadata: meta }), policies)).toBeUndefined();
    expect(targetFromRecord(record({ kind: 'host', health_path: '/healthz', metadata: meta }), policies)).toMatchObject({
      kind: 'host',
      health_path: '/healthz',
      recovery: ['reboot', 'alert'],
    });
    expect(targetFromRecord(record({ kind: 'host', metadata: { ...meta, health_path: '/ping' } }), policies)).toMatchObject({
      kind: 'host',
      health_path: '/ping',
    });
    expect(targetFromRecord(record({ kind: 'host', health_path: '/h', metadata: { recovery: ['alert'] } }), policies)?.recovery).toEqual([
      'alert',
    ]);
  });

  it('checks services at /health unless they say otherwise, and skips records without an HTTP URL', () => {
    expect(targetFromRecord(record({ url: 'http://127.0.0.1:3000' }), policies)).toMatchObject({
      kind: 'service',
      health_path: '/health',
      recovery: policies.service,
      updated_at: '2025-01-01T00:00:00.000Z',
    });
    expect(targetFromRecord(record({ url: 'tcp://127.0.0.1:3000' }), policies)).toBeUndefined();
  });
});

describe('configuration', () => {
  it('parses JSON variables and reports bad ones by name', () => {
    const c = parseConfig(configSchema, {
      STATIC_TARGETS: '[{"id":"a","url":"http://127.0.0.1:9"}]',
      ALERT_EMAIL_TO: 'a@example.com, b@example.com',
      SMTP_URL: 'smtp://127.0.0.1:25',
    });
    expect(c.PORT).toBe(8300);
    expect(c.STATIC_TARGETS[0]).toMatchObject({ id: 'a', health_path: '/health' });
    expect(c.ALERT_EMAIL_TO).toEqual(['a@example.com', 'b@example.com']);
    expect(c.RECOVERY_POLICY).toEqual(['restart', 'reboot', 'alert']);
    expect(c.HOST_RECOVERY_POLICY).toEqual(['reboot', 'alert']);
    expect(c.STATIC_TARGETS[0].kind).toBe('service');
    expect(c.MONITOR_ID).toMatch(/^[A-Za-z0-9_-]+$/);
    const bad = (env: Record<string, string>) => {
      try {
        parseConfig(configSchema, env);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).message;
      }
      throw new Error('expected a ConfigError');
    };
    expect(bad({ STATIC_TARGETS: 'not json' })).toMatch(/STATIC_TARGETS/);
    expect(bad({ STATIC_TARGETS: '[{"id":"a b","url":"ftp://x"}]' })).toMatch(/STATIC_TARGETS/);
    expect(bad({ RECOVERY_POLICY: 'restart,explode' })).toMatch(/RECOVERY_POLICY/);
    expect(bad({ ALERT_EMAIL_TO: 'ops@example.com' })).toMatch(/SMTP_URL/);
    expect(bad({ MEMBER_HEARTBEAT_MS: '5000', MEMBER_TTL_MS: '1000' })).toMatch(/MEMBER_TTL_MS/);
  });

  it('encodes any id as a valid KV key part, reversibly', () => {
    for (const id of ['plain-id_1', 'with.dots', 'sp ace/ünï']) {
      expect(keyPart(id)).toMatch(/^[-_=A-Za-z0-9]+$/);
      expect(fromKeyPart(keyPart(id))).toBe(id);
    }
  });
});
