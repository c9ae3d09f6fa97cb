import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync, statSync } from 'node:fs';
import request from 'supertest';
import { expectEnvelope, freePort } from '@droplet-mesh/udc-kit/testing';
import { startHarness, type Harness } from './support/harness.js';
import { httpsViaNginx, startUpstream, viaNginx, type Upstream } from './support/http.js';
import { startPebble, type Pebble } from './support/pebble.js';

// Full HTTP-01 issuance: Debian's pebble as the CA, the challenge served by the real nginx.
let pebble: Pebble;
let h: Harness;
let up: Upstream;

beforeAll(async () => {
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort });
  up = await startUpstream('secure');
  h = await startHarness({
    env: {
      PROXY_HTTP_PORT: String(httpPort),
      ACME_DIRECTORY_URL: pebble.directoryUrl,
      ACME_CA_BUNDLE: pebble.apiCaFile,
      ACME_EMAIL: 'ops@example.com',
    },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
  await up?.close();
  await pebble?.stop();
});

describe('certificates over ACME HTTP-01 against pebble', () => {
  it("issues, switches the route to HTTPS with a redirect, and the HTTPS answer verifies against pebble's root", async () => {
    const put = await request(h.pm.droplet.app)
      .put('/proxies/secure')
      .set(h.auth())
      .send({ domain: 'secure.test', upstreams: [{ host: '127.0.0.1', port: up.port }] });
    expect(put.status).toBe(201);
    const events: string[] = [];
    const sub = h.pm.droplet.ctx.bus.nc.subscribe('proxy-manager.cert.>', {
      callback: (_e, m) => {
        events.push(m.subject);
      },
    });

    const res = await request(h.pm.droplet.app).post('/proxies/secure/ssl').set(h.auth()).send({ email: 'admin@example.com' });
    expect(res.status).toBe(200);
    expect(res.body.action).toBe('issued');
    expect(res.body.route).toMatchObject({ enable_ssl: true, status: { https: true } });
    expect(res.body.route.certificate.issuer).toMatch(/Pebble/i);
    expect(res.body.route.certificate.days_left).toBeGreaterThan(30);

    const redirect = await viaNginx(h.httpPort, 'secure.test', '/some/path?q=1');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://secure.test:${h.httpsPort}/some/path?q=1`);

    const root = await pebble.issuanceRoot();
    const secure = await httpsViaNginx(h.httpsPort, 'secure.test', root);
    expect(secure.status).toBe(200);
    expect(secure.body).toContain('upstream secure');
    // The same request against an unrelated CA must fail verification: the check is real.
    await expect(httpsViaNginx(h.httpsPort, 'secure.test', readFileSync(pebble.apiCaFile, 'utf8'))).rejects.toThrow(/certificate/i);

    const keyMode = statSync(`${h.dataDir}/certs/secure.test/privkey.pem`).mode & 0o777;
    expect(keyMode).toBe(0o600);
    expect(statSync(`${h.dataDir}/certs`).mode & 0o777).toBe(0o700);

    const metrics = await request(h.pm.droplet.app).get('/metrics');
    expect(metrics.text).toMatch(
      /proxy_manager_certificate_expiry_timestamp_seconds\{domain="secure.test",droplet="proxy-manager"\} \d{10}/,
    );
    await h.pm.droplet.ctx.bus.nc.flush();
    sub.unsubscribe();
    expect(events).toContain('proxy-manager.cert.issued');
  });

  it('reuses a valid certificate instead of asking the CA again', async () => {
    const before = (await h.pm.certificates.read('secure.test'))?.serial;
    const res = await request(h.pm.droplet.app).post('/proxies/secure/ssl').set(h.auth()).send({});
    expect(res.status).toBe(200);
    expect(res.body.action).toBe('reused');
    expect((await h.pm.certificates.read('secure.test'))?.serial).toBe(before);
  });

  it('force_renew renews; the persisted budget then refuses a duplicate with 429 and Retry-After', async () => {
    const renewed = await request(h.pm.droplet.app).post('/proxies/secure/ssl').set(h.auth()).send({ force_renew: true });
    expect(renewed.status).toBe(200);
    expect(renewed.body.action).toBe('renewed');
    const refused = await request(h.pm.droplet.app).post('/proxies/secure/ssl').set(h.auth()).send({ force_renew: true });
    expectEnvelope(refused, 429, 'RATE_LIMITED');
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(3600);
    expect(refused.body.error.details.retry_at).toBeDefined();
    // The still-valid certificate keeps serving.
    expect((await httpsViaNginx(h.httpsPort, 'secure.test', await pebble.issuanceRoot())).status).toBe(200);
  });

  it('after a restart the route is re-rendered from KV with HTTPS, and the renewal loop renews a certificate that is due', async () => {
    const info = await h.pm.certificates.read('secure.test');
    const due = Date.parse(info!.not_after) - 10 * 86_400_000; // 10 days before expiry: inside the 30-day window
    const shift = due - Date.now();
    await h.restartDroplet({ now: () => Date.now() + shift });
    expect((await viaNginx(h.httpPort, 'secure.test')).status).toBe(301);
    const renewed = await h.pm.service.renewCertificates();
    expect(renewed).toEqual(['secure.test']);
    const after = await h.pm.certificates.read('secure.test');
    expect(after!.serial).not.toBe(info!.serial);
    expect((await httpsViaNginx(h.httpsPort, 'secure.test', await pebble.issuanceRoot())).status).toBe(200);
    const events = await request(h.pm.droplet.app)
      .get('/events?type=cert.')
      .set(h.auth(['read']));
    expect(events.body.events.map((e: { subject: string }) => e.subject)).toContain('proxy-manager.cert.renewed');
  });

  it('a domain the CA cannot validate fails with an error event and counts against the budget', async () => {
    await request(h.pm.droplet.app)
      .put('/proxies/nochallenge')
      .set(h.auth())
      .send({ domain: 'nochallenge.test', require_healthy: false, upstreams: [{ host: '127.0.0.1', port: up.port }] });
    // Break the challenge path: the webroot is not readable, so pebble's validation fails.
    const { chmodSync } = await import('node:fs');
    chmodSync(`${h.pm.paths.webroot}/.well-known/acme-challenge`, 0o700);
    try {
      const res = await request(h.pm.droplet.app).post('/proxies/nochallenge/ssl').set(h.auth()).send({});
      expectEnvelope(res, 502, 'DEPENDENCY_UNAVAILABLE');
    } finally {
      chmodSync(`${h.pm.paths.webroot}/.well-known/acme-challenge`, 0o755);
    }
    const events = await request(h.pm.droplet.app)
      .get('/events?type=cert.failed')
      .set(h.auth(['read']));
    expect(events.body.events.length).toBeGreaterThan(0);
    const ledger = await h.pm.certificates.budgetEvents();
    expect(ledger.filter((e) => e.domain === 'nochallenge.test' && e.kind === 'failed')).toHaveLength(1);
  });
});
