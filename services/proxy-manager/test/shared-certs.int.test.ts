import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Bus, createLogger } from '@droplet-mesh/udc-kit';
import { startNatsServer, type NatsServerHandle } from '@droplet-mesh/udc-kit/testing';
import type { KV } from '@nats-io/kv';
import { AcmeBudget } from '../src/acme/budget.js';
import { CertStore } from '../src/acme/cert-store.js';
import { Certificates } from '../src/acme/certificates.js';
import { SharedCertStore } from '../src/acme/shared-certs.js';
import type { CertificateIssuer, Issued } from '../src/acme/acme-issuer.js';
import { quiet } from './support/http.js';

// Certificate sharing between replicas on a real nats-server. The CA is a stand-in here
// (openssl self-signs; the real ACME path against pebble is in acme/replicas tests): what
// is under test is who asks it, and what another replica accepts from the bucket.
let nats: NatsServerHandle;
let bus: Bus;
let certsKv: KV;
let budgetKv: KV;
const dirs: string[] = [];
const { logger } = createLogger('proxy-manager-test', 'warn', { destination: quiet });

function selfSigned(domain: string): Issued {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-selfsigned-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-subj',
        `/CN=${domain}`,
        '-addext',
        `subjectAltName=DNS:${domain}`,
        '-days',
        '90',
      ],
      { stdio: 'ignore' },
    );
    return { keyPem: readFileSync(join(dir, 'key.pem')), chainPem: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A CA stand-in that takes a while, so two replicas really overlap. */
function countingIssuer(): CertificateIssuer & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    issue: async (domain) => {
      calls.push(domain);
      await new Promise((r) => setTimeout(r, 300));
      return selfSigned(domain);
    },
  };
}

function replica(id: string, opts: { key?: Buffer; issuer?: CertificateIssuer; leaseMs?: number } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-replica-certs-'));
  dirs.push(dir);
  const store = new CertStore(dir);
  const shared = new SharedCertStore(certsKv, { encryptionKey: opts.key, replicaId: id, logger });
  const issuer = opts.issuer ?? countingIssuer();
  const certificates = new Certificates({
    store,
    budget: new AcmeBudget(budgetKv, 'ledger'),
    issuer,
    renewBeforeDays: 30,
    logger,
    emit: () => undefined,
    shared,
    leaseMs: opts.leaseMs ?? 10_000,
    leasePollMs: 50,
  });
  return { store, shared, certificates, issuer };
}

beforeAll(async () => {
  nats = await startNatsServer();
  bus = await Bus.connect({ url: nats.url, name: 'shared-certs-test' });
  certsKv = await bus.kv('certificates', { history: 1 });
  budgetKv = await bus.kv('acme-budget', { history: 1 });
});
afterAll(async () => {
  await bus?.close();
  await nats?.stop({ removeStore: true });
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('certificates shared between replicas', () => {
  const key = randomBytes(32);

  it('two replicas asking at once cost the CA one certificate; both end up with it', async () => {
    const issuer = countingIssuer();
    const one = replica('one', { key, issuer });
    const two = replica('two', { key, issuer });
    const [a, b] = await Promise.all([one.certificates.ensure('race.test'), two.certificates.ensure('race.test')]);
    expect(issuer.calls).toEqual(['race.test']);
    expect([a.action, b.action].sort()).toEqual(['fetched', 'issued']);
    expect(a.certificate.serial).toBe(b.certificate.serial);
    expect((await one.store.read('race.test'))?.serial).toBe((await two.store.read('race.test'))?.serial);
    // The lease is given back once the certificate is stored.
    const lease = await certsKv.get('lease.race.test');
    expect(!lease || lease.operation !== 'PUT').toBe(true);
  });

  it('the key is sealed: another key, no key, or the value moved to another domain does not open it', async () => {
    const raw = (await certsKv.get('cert.race.test'))?.string() ?? '';
    expect(JSON.parse(raw).key).toMatchObject({ enc: 'aes-256-gcm' });
    expect(raw).not.toContain('PRIVATE KEY');
    expect(await replica('three', { key }).shared.get('race.test')).toMatchObject({ serial: expect.any(String) });
    expect(await replica('stranger', { key: randomBytes(32) }).shared.get('race.test')).toBeUndefined();
    expect(await replica('keyless').shared.get('race.test')).toBeUndefined();
    await certsKv.put('cert.moved.test', raw);
    expect(await replica('three', { key }).shared.get('moved.test')).toBeUndefined();
  });

  it('a replica that cannot open the shared certificate does not install it', async () => {
    const stranger = replica('stranger', { key: randomBytes(32) });
    expect(await stranger.certificates.installShared('race.test')).toBeUndefined();
    expect(await stranger.store.read('race.test')).toBeUndefined();
  });

  it('a lease left by a replica that died expires, and the waiting replica issues', async () => {
    const dead = replica('dead', { key, leaseMs: 400 });
    expect(await dead.shared.acquireLease('orphan.test', 400)).toBe(true);
    const survivor = replica('survivor', { key, leaseMs: 400 });
    const t0 = Date.now();
    const out = await survivor.certificates.ensure('orphan.test');
    expect(out.action).toBe('issued');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
    expect((survivor.issuer as ReturnType<typeof countingIssuer>).calls).toEqual(['orphan.test']);
  });

  it('without CERT_ENCRYPTION_KEY keys are shared unsealed, still obtained once', async () => {
    const issuer = countingIssuer();
    const plainA = replica('plain-a', { issuer });
    const plainB = replica('plain-b', { issuer });
    expect((await plainA.certificates.ensure('plain.test')).action).toBe('issued');
    expect(JSON.parse((await certsKv.get('cert.plain.test'))?.string() ?? '{}').key.enc).toBe('none');
    expect((await plainB.certificates.ensure('plain.test')).action).toBe('fetched');
    expect(issuer.calls).toEqual(['plain.test']);
  });
});
