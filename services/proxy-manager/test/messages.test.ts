import { describe, expect, it } from '@jest/globals';
import pino from 'pino';
import { completeEnvelope } from '@droplet-mesh/udc-kit';
import { routeMessageHandlers } from '../src/messages.js';
import type { ProxyService } from '../src/proxy-service.js';

// The message handler alone, over a recording stand-in for the proxy service.
function handlerWith(existing: { enable_ssl: boolean } | undefined) {
  const upserts: Array<{ name: string; spec: { enable_ssl: boolean } }> = [];
  const service = {
    get: async () => {
      if (!existing) throw new Error('no such route');
      return existing;
    },
    upsert: async (name: string, spec: { enable_ssl: boolean }) => {
      upserts.push({ name, spec });
      return { created: !existing, route: { name, ...spec } };
    },
  } as unknown as ProxyService;
  const entry = routeMessageHandlers({ service })['route.upsert'];
  const handle = typeof entry === 'function' ? entry : entry.handle;
  const send = (payload: Record<string, unknown>) =>
    handle(payload, completeEnvelope({ source: 'deployer', target: 'proxy-manager', message_type: 'command', payload }), {
      log: pino({ level: 'silent' }),
      transport: 'nats',
    });
  return { send, upserts };
}

const move = {
  action: 'route.upsert',
  name: 'app',
  domain: 'app.test',
  upstreams: [{ host: '127.0.0.1', port: 20001 }],
  require_healthy: false,
};

describe('route.upsert keeps HTTPS a sender does not mention', () => {
  it('a deploy moving an HTTPS route to new upstreams keeps enable_ssl', async () => {
    const h = handlerWith({ enable_ssl: true });
    await h.send(move);
    expect(h.upserts[0].spec.enable_ssl).toBe(true);
  });
  it('an explicit enable_ssl=false still turns HTTPS off', async () => {
    const h = handlerWith({ enable_ssl: true });
    await h.send({ ...move, enable_ssl: false });
    expect(h.upserts[0].spec.enable_ssl).toBe(false);
  });
  it('a new route gets the default (HTTP only)', async () => {
    const h = handlerWith(undefined);
    await h.send(move);
    expect(h.upserts[0].spec.enable_ssl).toBe(false);
  });
});
