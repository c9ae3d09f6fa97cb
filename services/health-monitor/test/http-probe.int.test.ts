import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { UndiciProbe } from '../src/checks/http-checker.js';

// The probe's hard deadline is a timer it clears itself (not AbortSignal.timeout): a check
// still ends at its timeout whether the server is silent, stalls mid-body, or the check
// waits for a pooled connection; a finished check leaves no timer behind.

let server: Server;
let base: string;
const held: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.url === '/ok') return void res.end('fine');
    if (req.url === '/fail') return void res.writeHead(500).end('no');
    if (req.url === '/silent') return void held.push(res);
    if (req.url === '/stall-body') {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      held.push(res);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const r of held) r.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('UndiciProbe', () => {
  it('answers 2xx as healthy and other statuses as failed, with the status', async () => {
    const probe = new UndiciProbe();
    try {
      expect(await probe.get(`${base}/ok`, 2000)).toMatchObject({ ok: true, status_code: 200 });
      expect(await probe.get(`${base}/fail`, 2000)).toMatchObject({ ok: false, status_code: 500, error: 'HTTP 500' });
    } finally {
      await probe.close();
    }
  });

  it('ends a check at its timeout when the server never answers or stalls mid-body', async () => {
    const probe = new UndiciProbe();
    try {
      for (const path of ['/silent', '/stall-body']) {
        const t0 = performance.now();
        const out = await probe.get(`${base}${path}`, 300);
        const took = performance.now() - t0;
        expect(out).toMatchObject({ ok: false, error: 'timeout' });
        expect(took).toBeGreaterThanOrEqual(250);
        expect(took).toBeLessThan(3000);
      }
    } finally {
      await probe.close();
    }
  });

  it('counts the wait for a pooled connection against the deadline', async () => {
    // 4 connections per origin: the 5th to 8th checks queue behind 4 silent ones.
    const probe = new UndiciProbe();
    try {
      const t0 = performance.now();
      const outs = await Promise.all(Array.from({ length: 8 }, () => probe.get(`${base}/silent`, 400)));
      expect(outs.every((o) => !o.ok && o.error === 'timeout')).toBe(true);
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await probe.close();
    }
  });

  it('fails a check of a URL it cannot request, without throwing', async () => {
    const probe = new UndiciProbe();
    try {
      for (const url of ['not a url', 'ftp://127.0.0.1/x', 'http://'])
        expect(await probe.get(url, 2000)).toMatchObject({ ok: false, error: 'INVALID_URL' });
    } finally {
      await probe.close();
    }
  });

  it('leaves no timer running after a check that finished', async () => {
    const probe = new UndiciProbe();
    try {
      const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      for (let i = 0; i < 20; i++) expect((await probe.get(`${base}/ok`, 60_000)).ok).toBe(true);
      const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      expect(after - before).toBeLessThan(5);
    } finally {
      await probe.close();
    }
  });
});
