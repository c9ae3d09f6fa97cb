import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { Writable } from 'node:stream';
import request from 'supertest';
import { expectEnvelope } from '@droplet-mesh/udc-kit/testing';
import { startHarness, type Harness } from './support/harness.js';
import { httpsViaNginx, startUpstream, viaNginx, type Upstream } from './support/http.js';
import { createTestCa, type TestCa } from './support/certs.js';

// Uploaded certificates through the API, stored sealed in NATS, served by the real nginx.
let h: Harness;
let up: Upstream;
let ca: TestCa;
let logs = '';
const logSink = new Writable({
  write: (chunk, _e, cb) => {
    logs += String(chunk);
    cb();
  },
});

beforeAll(async () => {
  ca = createTestCa();
  up = await startUpstream('tls-app');
  h = await startHarness({
    env: {
      CERT_ENCRYPTION_KEY: randomBytes(32).toString('base64'),
      // Nothing may reach a real CA from this test: routes not covered by an upload fail their ACME order fast.
      ACME_DIRECTORY_URL: 'http://127.0.0.1:9/directory',
      LOG_LEVEL: 'debug',
    },
    deps: { logDestination: logSink },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
  await up?.close();
  ca?.close();
});

const api = () => request(h.pm.droplet.app);
const route = (name: string, domain: string) =>
  api()
    .put(`/proxies/${name}`)
    .set(h.auth())
    .send({ domain, https: true, require_healthy: false, upstreams: [{ host: '127.0.0.1', port: up.port }] });
/** A PEM key's base64 lines: none of them may appear in an answer, a log line or the bucket. */
const keyLines = (pem: string) => pem.split('\n').filter((l) => l && !l.startsWith('-----'));

describe('uploaded certificates', () => {
  let wildcard: ReturnType<TestCa['issue']>;
  let id: string;

  it('a wildcard upload is checked, stored sealed, and served over TLS by the route it covers', async () => {
    expect((await route('app', 'a.example.test')).status).toBe(201);
    expect((await route('bare', 'example.test')).status).toBe(201);
    expect((await route('deep', 'b.a.example.test')).status).toBe(201);
    wildcard = ca.issue({ names: ['*.example.test'] });
    const res = await api().post('/certificates').set(h.auth()).send({ certificate: wildcard.chainPem, key: wildcard.keyPem });
    expect(res.status).toBe(201);
    id = res.body.certificate.id;
    expect(res.body.certificate).toMatchObject({ names: ['*.example.test'], id: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(res.body.routes).toEqual(['app']);

    const root = ca.rootPem;
    const tls = await httpsViaNginx(h.httpsPort, 'a.example.test', root, '/hello');
    expect(tls.status).toBe(200);
    expect(tls.body).toContain('upstream tls-app');
    const redirect = await viaNginx(h.httpPort, 'a.example.test', '/x');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://a.example.test:${h.httpsPort}/x`);
    // The challenge path stays on HTTP for ACME.
    expect((await viaNginx(h.httpPort, 'a.example.test', '/.well-known/acme-challenge/none')).status).toBe(404);

    // The wildcard covers one label only: the bare domain and two labels down are not served with it.
    const bare = await api()
      .get('/proxies/bare')
      .set(h.auth(['read']));
    expect(bare.body).toMatchObject({ certificate: null, status: { https: false } });
    const deep = await api()
      .get('/proxies/deep')
      .set(h.auth(['read']));
    expect(deep.body).toMatchObject({ certificate: null, status: { https: false } });
    await expect(httpsViaNginx(h.httpsPort, 'example.test', root)).rejects.toThrow();

    const one = await api()
      .get('/proxies/app')
      .set(h.auth(['read']));
    expect(one.body.certificate).toMatchObject({ source: 'uploaded', id, issuer: expect.stringContaining('Mesh Test Intermediate') });
  });

  it('the key is in no answer, no log line, and only sealed in the bucket', async () => {
    const list = await api()
      .get('/certificates')
      .set(h.auth(['read']));
    expect(list.status).toBe(200);
    expect(list.body.items.map((c: { id: string }) => c.id)).toEqual([id]);
    const one = await api()
      .get(`/certificates/${id}`)
      .set(h.auth(['read']));
    expect(one.body.names).toEqual(['*.example.test']);
    const again = await api().post('/certificates').set(h.auth()).send({ certificate: wildcard.chainPem, key: wildcard.keyPem });
    expect(again.status).toBe(200);
    for (const text of [JSON.stringify(list.body), JSON.stringify(one.body), JSON.stringify(again.body), logs]) {
      expect(text).not.toMatch(/PRIVATE KEY/);
      for (const line of keyLines(wildcard.keyPem)) expect(text).not.toContain(line);
    }
    expect(logs).toContain('certificate uploaded');

    const kv = await h.pm.droplet.ctx.bus.kv(h.pm.config.CERT_BUCKET);
    const raw = (await kv.get(`upload.${id}`))?.string() ?? '';
    expect(raw).toContain('aes-256-gcm');
    expect(raw).toContain('BEGIN CERTIFICATE');
    expect(raw).not.toMatch(/PRIVATE KEY/);
  });

  it('refuses a mismatched key, an expired certificate and hostile text with a 400 naming the field', async () => {
    const other = ca.issue({ names: ['m.example.test'] });
    const mismatched = await api().post('/certificates').set(h.auth()).send({ certificate: other.chainPem, key: ca.otherKey() });
    expectEnvelope(mismatched, 400, 'INVALID_REQUEST');
    expect(mismatched.body.error.details.fields[0].path).toBe('key');
    const old = ca.issue({ names: ['old.example.test'], start: '20200101000000Z', end: '20200201000000Z' });
    const expired = await api().post('/certificates').set(h.auth()).send({ certificate: old.chainPem, key: old.keyPem });
    expectEnvelope(expired, 400, 'INVALID_REQUEST');
    expect(expired.body.error.details.fields[0]).toMatchObject({ path: 'certificate', message: expect.stringMatching(/expired/) });
    const hostile = await api().post('/certificates').set(h.auth()).send({ certificate: 'x; }\n$host "', key: other.keyPem });
    expectEnvelope(hostile, 400, 'INVALID_REQUEST');
    expect(JSON.stringify(hostile.body)).not.toContain(keyLines(other.keyPem)[0]);
    expectEnvelope(
      await api()
        .post('/certificates')
        .set(h.auth(['read']))
        .send({ certificate: other.chainPem, key: other.keyPem }),
      403,
    );
    expect(
      (
        await api()
          .get('/certificates')
          .set(h.auth(['read']))
      ).body.items,
    ).toHaveLength(1);
  });

  it('after a restart the upload comes back from the bucket (the local copy gone) and still serves', async () => {
    await h.stopDroplet();
    rmSync(`${h.dataDir}/certs/_uploaded`, { recursive: true, force: true });
    await h.restartDroplet({ logDestination: logSink });
    expect(existsSync(`${h.dataDir}/certs/_uploaded/${id}/privkey.pem`)).toBe(true);
    expect((await httpsViaNginx(h.httpsPort, 'a.example.test', ca.rootPem)).status).toBe(200);
  });

  it('deleting it takes the route back to HTTP until a certificate is there again', async () => {
    const del = await api().delete(`/certificates/${id}`).set(h.auth());
    expect(del.status).toBe(200);
    expect(del.body).toMatchObject({ deleted: true, routes: ['app'] });
    const plain = await viaNginx(h.httpPort, 'a.example.test');
    expect(plain.status).toBe(200);
    expect(existsSync(`${h.dataDir}/certs/_uploaded/${id}`)).toBe(false);
    expectEnvelope(
      await api()
        .get(`/certificates/${id}`)
        .set(h.auth(['read'])),
      404,
      'NOT_FOUND',
    );
    // It falls back to ACME: HTTP now, the certificate asked for in the background.
    const after = await api()
      .get('/proxies/app')
      .set(h.auth(['read']));
    expect(after.body).toMatchObject({ enable_ssl: true, ssl_pending: true, certificate: null, status: { https: false } });
  });
});
