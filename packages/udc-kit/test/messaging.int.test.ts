// Droplets talking over a real nats-server: /send → NATS → handler → reply.
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { connect, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { MessageReply } from '../src/envelope.js';
import {
  expectEnvelope,
  natsAuthHeaders,
  startNatsServer,
  startTestAuthority,
  waitFor,
  type NatsServerHandle,
  type TestAuthority,
} from '../src/testing/index.js';
import { captureStream, createTestDroplet, type TestDroplet, tokenOnlyRegistry } from './helpers.js';

let nats: NatsServerHandle;
let authority: TestAuthority;
let nc: NatsConnection;
let alpha: TestDroplet;
let beta: TestDroplet;
let alphaUrl: string;
let betaUrl: string;
const alphaLogs = captureStream();
const betaLogs = captureStream();
const betaSeen: string[] = [];
const droplets: TestDroplet[] = [];

const natsAuth = natsAuthHeaders;

const strangerKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const writeAuth = () => ({ Authorization: `Bearer ${authority.mint({ scopes: ['write'] })}`, 'Content-Type': 'application/json' });

async function send(body: object, headers: Record<string, string> = {}) {
  const res = await fetch(`${alphaUrl}/send`, { method: 'POST', headers: { ...writeAuth(), ...headers }, body: JSON.stringify(body) });
  return {
    status: res.status,
    body: (await res.json()) as MessageReply & {
      status?: string;
      error?: { code: string; message: string; details?: Record<string, unknown> };
    },
  };
}

/** A plain (non-queue) subscriber sees every request on a subject, headers included, without answering. */
async function tap(subject: string): Promise<{ msgs: Msg[]; sub: Subscription }> {
  const msgs: Msg[] = [];
  const sub = nc.subscribe(subject, {
    callback: (_e, m) => {
      msgs.push(m);
    },
  });
  await nc.flush(); // the server has the subscription before anyone publishes
  return { msgs, sub };
}

beforeAll(async () => {
  nats = await startNatsServer();
  authority = await startTestAuthority();
  nc = await connect({ servers: nats.url });
  const env = { NATS_URL: nats.url, ...authority.env() };
  alpha = createTestDroplet({
    env,
    name: 'alpha',
    logDestination: alphaLogs.stream,
    registry: tokenOnlyRegistry(() => authority.mint({ sub: 'alpha', scopes: ['read', 'write'] })),
  });
  beta = createTestDroplet({ env, name: 'beta', logDestination: betaLogs.stream, onEcho: (_p, trace) => betaSeen.push(trace) });
  droplets.push(alpha, beta);
  alphaUrl = (await alpha.start({ port: 0 })).url;
  betaUrl = (await beta.start({ port: 0 })).url;
});

afterAll(async () => {
  for (const d of droplets) await d.stop();
  await nc?.close();
  await authority?.close();
  await nats?.stop({ removeStore: true });
});

describe('/send → NATS → /message handler', () => {
  it("reaches the other droplet's handler and returns its reply", async () => {
    const before = betaSeen.length;
    const res = await send({ target: 'beta', message_type: 'command', payload: { action: 'echo', text: 'hello beta' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ received: true, result: 'success', data: { echo: 'hello beta', by: 'beta' } });
    expect(Number.isNaN(Date.parse(res.body.processed_at))).toBe(false);
    expect(betaSeen.length).toBe(before + 1);
  });

  it('carries the trace id in the NATS header and in the log lines of both droplets', async () => {
    const t = await tap('udc.beta.message');
    const trace = 'trace-travels-1';
    const res = await send(
      { target: 'beta', message_type: 'query', priority: 'high', payload: { action: 'echo', text: 'x' } },
      { 'X-Correlation-ID': trace },
    );
    t.sub.unsubscribe();
    expect(res.body.trace_id).toBe(trace);
    expect(betaSeen.at(-1)).toBe(trace);

    expect(t.msgs).toHaveLength(1);
    expect(t.msgs[0].headers?.get('trace-id')).toBe(trace);
    expect(t.msgs[0].headers?.get('priority')).toBe('high');
    expect(t.msgs[0].json<{ trace_id: string; source: string; target: string }>()).toMatchObject({
      trace_id: trace,
      source: 'alpha',
      target: 'beta',
    });

    const alphaLines = alphaLogs.lines().filter((l) => l.trace_id === trace || l.correlation_id === trace);
    expect(alphaLines.map((l) => l.msg)).toEqual(expect.arrayContaining(['message delivered', 'request']));
    const betaLines = betaLogs.lines().filter((l) => l.trace_id === trace);
    expect(betaLines.map((l) => l.msg)).toEqual(expect.arrayContaining(['echo handler', 'message handled']));
    // Every line beta wrote while handling it carries the trace id.
    const betaHandling = betaLogs.lines().filter((l) => l.msg === 'echo handler' || l.msg === 'message handled');
    expect(betaHandling.filter((l) => l.trace_id === undefined)).toEqual([]);
  });

  it('uses an explicit trace_id over the correlation id', async () => {
    const res = await send(
      { target: 'beta', message_type: 'query', trace_id: 'explicit-trace-9', payload: { action: 'echo', text: 'x' } },
      { 'X-Correlation-ID': 'other-corr' },
    );
    expect(res.body.trace_id).toBe('explicit-trace-9');
    expect(betaLogs.lines().some((l) => l.trace_id === 'explicit-trace-9' && l.msg === 'message handled')).toBe(true);
  });

  it('reports an unknown action as result:error with a clear code, not an HTTP error', async () => {
    const res = await send({ target: 'beta', message_type: 'command', payload: { action: 'no-such-thing' } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      received: true,
      result: 'error',
      error: { code: 'NOT_FOUND', message: expect.stringContaining("no handler for action 'no-such-thing'") },
    });
    expect(res.body.error?.details).toEqual({ known_actions: ['echo', 'explode', 'later', 'ping', 'status.only'] });
    const none = await send({ target: 'beta', message_type: 'command', payload: {} });
    expect(none.body).toMatchObject({ result: 'error', error: { code: 'NOT_FOUND', message: 'payload.action is required' } });
  });

  it('passes handler outcomes through: refused, crashed, queued, wrong message_type', async () => {
    const refused = await send({ target: 'beta', message_type: 'command', payload: { action: 'echo', text: 42 } });
    expect(refused.body).toMatchObject({ result: 'error', error: { code: 'INVALID_REQUEST', message: 'payload.text must be a string' } });
    const crashed = await send({ target: 'beta', message_type: 'command', payload: { action: 'explode' } });
    expect(crashed.body).toMatchObject({ result: 'error', error: { code: 'INTERNAL_ERROR' } });
    expect(JSON.stringify(crashed.body)).not.toContain('handler bug');
    expect(
      betaLogs.lines().some((l) => l.msg === 'message handler failed' && (l.err as { message: string }).message === 'handler bug'),
    ).toBe(true);
    const later = await send({ target: 'beta', message_type: 'command', payload: { action: 'later' } });
    expect(later.body).toMatchObject({ result: 'queued', data: { job: 'j-1' } });
    const wrongType = await send({ target: 'beta', message_type: 'command', payload: { action: 'status.only' } });
    expect(wrongType.body).toMatchObject({ result: 'error', error: { code: 'NOT_FOUND' } });
    const rightType = await send({ target: 'beta', message_type: 'status', payload: { action: 'status.only' } });
    expect(rightType.body).toMatchObject({ result: 'success', data: { seen: true } });
  });

  it('the same handler answers HTTP /message and NATS', async () => {
    const envelope = {
      source: 'alpha',
      target: 'beta',
      message_type: 'query',
      payload: { action: 'echo', text: 'both ways' },
      trace_id: 'same-handler-1',
    };
    const http = await fetch(`${betaUrl}/message`, { method: 'POST', headers: writeAuth(), body: JSON.stringify(envelope) });
    const viaHttp = (await http.json()) as MessageReply;
    const viaNats = (
      await nc.request('udc.beta.message', JSON.stringify(envelope), {
        timeout: 2000,
        headers: natsAuth(authority.mint({ scopes: ['write'] })),
      })
    ).json<MessageReply>();
    expect(viaHttp).toMatchObject({ result: 'success', trace_id: 'same-handler-1', data: { echo: 'both ways', by: 'beta' } });
    expect({ ...viaNats, processed_at: '' }).toEqual({ ...viaHttp, processed_at: '' });
  });

  describe('a NATS message is served only with a valid token of the scope its action needs', () => {
    const echo = { source: 'alpha', target: 'beta', message_type: 'command', payload: { action: 'echo', text: 'hi' } };
    const ask = async (h?: ReturnType<typeof headers>) =>
      (await nc.request('udc.beta.message', JSON.stringify(echo), { timeout: 2000, ...(h ? { headers: h } : {}) })).json<MessageReply>();

    it.each([
      ['no token at all', () => undefined, 'UNAUTHORIZED'],
      ['a token signed by another key', () => natsAuth(authority.mint({ scopes: ['write'], privateKeyPem: strangerKey })), 'UNAUTHORIZED'],
      ['an expired token', () => natsAuth(authority.mint({ scopes: ['write'], expiresInSeconds: -10 })), 'UNAUTHORIZED'],
      ['a token for another audience', () => natsAuth(authority.mint({ scopes: ['write'], audience: 'elsewhere' })), 'UNAUTHORIZED'],
      ['a read-only token for a command', () => natsAuth(authority.mint({ scopes: ['read'] })), 'FORBIDDEN'],
      [
        'a header that is not a bearer token',
        () => {
          const h = headers();
          h.set('authorization', 'Basic abc');
          return h;
        },
        'UNAUTHORIZED',
      ],
    ])('refuses %s, handles nothing and logs it', async (_label, auth, code) => {
      const before = betaSeen.length;
      const reply = await ask(auth());
      expect(reply).toMatchObject({ received: false, result: 'error', error: { code } });
      expect(betaSeen.length).toBe(before);
      expect(betaLogs.lines().some((l) => l.msg === 'message refused: not authorised' && l.code === code)).toBe(true);
    });

    it('serves a write token, and ping (liveness only) without one', async () => {
      expect(await ask(natsAuth(authority.mint({ scopes: ['write'] })))).toMatchObject({ result: 'success', data: { echo: 'hi' } });
      const ping = await nc.request('udc.beta.message', JSON.stringify({ ...echo, payload: { action: 'ping' } }), { timeout: 2000 });
      expect(ping.json<MessageReply>()).toMatchObject({ result: 'success', data: { pong: true } });
    });

    it("/send forwards the caller's own token: a read-only caller cannot command through another droplet", async () => {
      const res = await fetch(`${alphaUrl}/send`, {
        method: 'POST',
        headers: {
          Authorization: `Bearer ${authority.mint({ scopes: ['read', 'write'], sub: 'caller-1' })}`,
          'Content-Type': 'application/json',
        },
        body: JSON.stringify({ target: 'beta', message_type: 'command', payload: { action: 'echo', text: 'as caller' } }),
      });
      expect(((await res.json()) as MessageReply).result).toBe('success');
      const tapped = await tap('udc.beta.message');
      await send({ target: 'beta', message_type: 'query', payload: { action: 'ping' } });
      tapped.sub.unsubscribe();
      expect(tapped.msgs[0]?.headers?.get('authorization')).toMatch(/^Bearer /);
    });
  });

  it('answers a malformed NATS message with result:error instead of dropping it', async () => {
    const notJson = (await nc.request('udc.beta.message', 'this is not json', { timeout: 2000 })).json<MessageReply>();
    expect(notJson).toMatchObject({ received: false, result: 'error', error: { code: 'INVALID_REQUEST' } });
    const badEnvelope = await nc.request('udc.beta.message', JSON.stringify({ source: 'BAD NAME', message_type: 'shout' }), {
      timeout: 2000,
    });
    expect(badEnvelope.json<MessageReply>()).toMatchObject({ received: false, result: 'error', error: { code: 'INVALID_REQUEST' } });
    expect(JSON.stringify(badEnvelope.json())).toContain('message_type');
  });

  it('takes the trace id from the NATS header when the envelope has none', async () => {
    const h = headers();
    h.set('trace-id', 'header-trace-7');
    const m = await nc.request(
      'udc.beta.message',
      JSON.stringify({ source: 'alpha', target: 'beta', message_type: 'query', payload: { action: 'ping' } }),
      { timeout: 2000, headers: h },
    );
    expect(m.json<MessageReply>()).toMatchObject({ trace_id: 'header-trace-7', result: 'success' });
    expect(m.headers?.get('trace-id')).toBe('header-trace-7');
  });

  it('ctx.send gives services the same request/reply', async () => {
    const reply = await alpha.ctx.send({ target: 'beta', message_type: 'query', payload: { action: 'ping' } });
    expect(reply).toMatchObject({ result: 'success', data: { pong: true, droplet: 'beta', version: '1.2.3' } });
  });

  it('validates the /send body', async () => {
    for (const body of [
      {},
      { target: 'Beta!', message_type: 'query' },
      { target: 'beta', message_type: 'yell' },
      { target: 'beta', message_type: 'query', retry_count: 11 },
      { target: 'beta', message_type: 'query', timeout_ms: 10 },
    ]) {
      const res = await send(body);
      expectEnvelope({ status: res.status, body: res.body }, 400, 'INVALID_REQUEST');
    }
  });
});

describe('an absent or silent target', () => {
  it('no responder: 503 DEPENDENCY_UNAVAILABLE after retry_count + 1 attempts', async () => {
    const trace = 'absent-target-1';
    const started = Date.now();
    const res = await send(
      { target: 'nobody', message_type: 'query', retry_count: 2, timeout_ms: 200, payload: { action: 'ping' } },
      { 'X-Correlation-ID': trace },
    );
    expectEnvelope({ status: res.status, body: res.body }, 503, 'DEPENDENCY_UNAVAILABLE');
    expect(res.body.error?.details).toMatchObject({ target: 'nobody', attempts: 3, trace_id: trace });
    const attempts = alphaLogs.lines().filter((l) => l.trace_id === trace && l.msg === 'message delivery failed');
    expect(attempts.map((l) => l.attempt)).toEqual([0, 1, 2]);
    // Backoff between attempts (100 ms, then 200 ms): retries are spaced, not a busy loop.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it('a target that never answers: each attempt times out, and every attempt reaches the subject', async () => {
    const t = await tap('udc.mute.message');
    const res = await send({ target: 'mute', message_type: 'query', retry_count: 3, timeout_ms: 100, payload: { action: 'ping' } });
    t.sub.unsubscribe();
    expectEnvelope({ status: res.status, body: res.body }, 503, 'DEPENDENCY_UNAVAILABLE');
    expect(res.body.error?.details).toMatchObject({ attempts: 4 });
    expect(t.msgs).toHaveLength(4);
    const traces = new Set(t.msgs.map((m) => m.headers?.get('trace-id')));
    expect(traces.size).toBe(1);
  });

  it('retry_count 0 means a single attempt', async () => {
    const t = await tap('udc.mute.message');
    const res = await send({ target: 'mute', message_type: 'query', retry_count: 0, timeout_ms: 100 });
    t.sub.unsubscribe();
    expect(res.status).toBe(503);
    expect(t.msgs).toHaveLength(1);
  });

  it('a target that comes up between retries is reached', async () => {
    const late = createTestDroplet({ env: { NATS_URL: nats.url, ...authority.env() }, name: 'late' });
    droplets.push(late);
    const pending = send({ target: 'late', message_type: 'query', retry_count: 6, timeout_ms: 200, payload: { action: 'ping' } });
    await waitFor(
      'the first attempt to fail',
      () => alphaLogs.lines().some((l) => l.target === 'late' && l.msg === 'message delivery failed'),
      5000,
    );
    await late.start({ port: 0 });
    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ result: 'success', data: { droplet: 'late' } });
  });
});

describe('replicas', () => {
  it('two replicas of a droplet share its messages through the NATS queue group, each message handled once', async () => {
    const handled: Record<string, string[]> = { r1: [], r2: [] };
    for (const id of ['r1', 'r2'] as const) {
      const replica = createTestDroplet({
        env: { NATS_URL: nats.url, ...authority.env() },
        name: 'gamma',
        replicaId: id,
        onEcho: (p) => handled[id].push(String(p.text)),
      });
      droplets.push(replica);
      await replica.start({ port: 0 });
    }
    const replies = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        alpha.ctx.send({ target: 'gamma', message_type: 'command', payload: { action: 'echo', text: `m${i}` } }),
      ),
    );
    expect(replies.every((r) => r.result === 'success')).toBe(true);
    const all = [...handled.r1, ...handled.r2].sort();
    expect(all).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`).sort());
    expect(handled.r1.length).toBeGreaterThan(0);
    expect(handled.r2.length).toBeGreaterThan(0);
    const by = new Set(replies.map((r) => (r.data as { replica: string }).replica));
    expect(by).toEqual(new Set(['r1', 'r2']));
  });
});
