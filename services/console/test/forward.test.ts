import { describe, expect, it } from '@jest/globals';
import { parseForwardUrl } from '../src/forward.js';
import { SessionStore } from '../src/sessions.js';

describe('SessionStore', () => {
  const make = (now: { t: number }, max = 10) => new SessionStore({ maxSessions: max, now: () => now.t });

  it('finds a session by its cookie only, and ends it when its token expires', () => {
    const now = { t: 1_000_000 };
    const store = make(now);
    const { cookie, session } = store.create({ token: 'tok', subject: 'operator', scopes: ['read'], expiresAt: now.t + 60_000 });
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(session.key).not.toContain(cookie);
    expect(store.get(cookie)?.token).toBe('tok');
    expect(store.get(`${cookie}x`)).toBeUndefined();
    expect(store.get(undefined)).toBeUndefined();
    let ended = 0;
    session.onEnd.add(() => ended++);
    now.t += 60_000;
    expect(store.get(cookie)).toBeUndefined();
    expect(ended).toBe(1);
    expect(store.size).toBe(0);
  });

  it('gives every session its own CSRF token and drops the oldest beyond the limit', () => {
    const now = { t: 0 };
    const store = make(now, 2);
    const a = store.create({ token: 'a', subject: 's', scopes: [], expiresAt: 10_000 });
    const b = store.create({ token: 'b', subject: 's', scopes: [], expiresAt: 10_000 });
    expect(a.session.csrf).not.toBe(b.session.csrf);
    store.create({ token: 'c', subject: 's', scopes: [], expiresAt: 10_000 });
    expect(store.get(a.cookie)).toBeUndefined();
    expect(store.get(b.cookie)?.token).toBe('b');
    expect(store.destroy(b.cookie)).toBe(true);
    expect(store.get(b.cookie)).toBeUndefined();
  });

  it('sweep() ends expired sessions without a lookup', () => {
    const now = { t: 0 };
    const store = make(now);
    store.create({ token: 'a', subject: 's', scopes: [], expiresAt: 5 });
    store.create({ token: 'b', subject: 's', scopes: [], expiresAt: 50 });
    now.t = 10;
    store.sweep();
    expect(store.size).toBe(1);
  });
});

describe('parseForwardUrl', () => {
  it('keeps the raw path and query after /api/<droplet>', () => {
    expect(parseForwardUrl('/api/deployer/deployments?status=running&page=2')).toEqual({
      droplet: 'deployer',
      pathAndQuery: '/deployments?status=running&page=2',
    });
    expect(parseForwardUrl('/api/multi-cloud-manager/instances/local/a%3Ab')).toEqual({
      droplet: 'multi-cloud-manager',
      pathAndQuery: '/instances/local/a%3Ab',
    });
    expect(parseForwardUrl('/api/registry')).toEqual({ droplet: 'registry', pathAndQuery: '/' });
    // Registry ids may be dotted (drop4.fullpotential.ai).
    expect(parseForwardUrl('/api/drop4.fullpotential.ai/health')).toEqual({ droplet: 'drop4.fullpotential.ai', pathAndQuery: '/health' });
  });

  it.each([
    '/api/x/../y',
    '/api/../x',
    '/api/a..b/x',
    '/api/.x/y',
    '/api/x/%2e%2e/y',
    '/api/x/a/%2E/b',
    '/api/x/a%5Cb',
    '/api/x/%0a',
    '/api/UPPER/x',
    '/api/x/%zz',
    '/apix/y',
  ])('refuses %s', (url) => {
    expect(() => parseForwardUrl(url)).toThrow();
  });
});
