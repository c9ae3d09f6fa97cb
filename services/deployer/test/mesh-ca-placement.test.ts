import { randomBytes, X509Certificate } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import { createMeshCa, issueCertificate, issuedBy, loadOrCreateMeshCa, MESH_CA_KV_KEY, type CaKv } from '../src/domain/mesh-ca.js';
import { answering, environmentServers, spreadReplicas } from '../src/domain/placement.js';

/** A KV stand-in with create-only-when-absent, as JetStream's. */
function memoryKv(): CaKv & { raw: Map<string, string> } {
  const raw = new Map<string, string>();
  return {
    raw,
    async get(key) {
      const v = raw.get(key);
      return v === undefined ? null : { operation: 'PUT', length: v.length, json: <T>() => JSON.parse(v) as T };
    },
    async create(key, value) {
      if (raw.has(key)) throw new Error('wrong last sequence: 1');
      raw.set(key, value);
      return 1;
    },
  };
}

describe('mesh CA', () => {
  it('issues server certificates bound to their addresses and client certificates, both chaining to the CA only', async () => {
    const ca = await createMeshCa();
    const server = await issueCertificate(ca, { kind: 'server', commonName: 'eng-1', addresses: ['10.1.2.3', 'eng-1.mesh'] });
    const client = await issueCertificate(ca, { kind: 'client', commonName: 'deployer' });
    const x = new X509Certificate(server.cert);
    expect(x.subjectAltName).toContain('IP Address:10.1.2.3');
    expect(x.subjectAltName).toContain('DNS:eng-1.mesh');
    expect(x.checkHost('eng-1.mesh')).toBe('eng-1.mesh');
    expect(x.checkIP('10.1.2.3')).toBe('10.1.2.3');
    expect(x.checkIP('10.1.2.4')).toBeUndefined();
    expect(x.ca).toBe(false);
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
    expect(issuedBy(server.cert, ca.certPem)).toBe(true);
    expect(issuedBy(client.cert, ca.certPem)).toBe(true);
    expect(issuedBy(server.cert, (await createMeshCa()).certPem)).toBe(false);
    await expect(issueCertificate(ca, { kind: 'server', commonName: 'x' })).rejects.toThrow(/at least one address/);
  });

  it('is created once, kept sealed, and the same for every replica; another master key cannot open it', async () => {
    const kv = memoryKv();
    const key = randomBytes(32);
    const [a, b] = await Promise.all([loadOrCreateMeshCa(kv, key), loadOrCreateMeshCa(kv, key)]);
    expect(a.certPem).toBe(b.certPem);
    expect(a.keyPem).toBe(b.keyPem);
    expect(kv.raw.get(MESH_CA_KV_KEY)).not.toMatch(/PRIVATE KEY/);
    expect((await loadOrCreateMeshCa(kv, key)).certPem).toBe(a.certPem);
    await expect(loadOrCreateMeshCa(kv, randomBytes(32))).rejects.toThrow(/cannot be opened/);
  });
});

describe('placement over an environment', () => {
  const servers = [
    { id: 's3', environments: ['prod'] },
    { id: 's1', environments: ['shop/prod'] },
    { id: 's2', environments: ['other/prod', 'staging'] },
    { id: 'local' },
  ];

  it("finds an environment's servers by <env> or <project>/<env>", () => {
    expect(environmentServers(servers, 'shop', 'prod').map((s) => s.id)).toEqual(['s1', 's3']);
    expect(environmentServers(servers, 'other', 'prod').map((s) => s.id)).toEqual(['s2', 's3']);
    expect(environmentServers(servers, 'shop', 'staging').map((s) => s.id)).toEqual(['s2']);
    expect(environmentServers(servers, 'shop', 'dev')).toEqual([]);
  });

  it('puts at most one replica per server while there are enough servers, evenly beyond', () => {
    const ids = ['a', 'b', 'c'];
    for (const key of ['t1', 't2', 't3', 't4']) {
      const three = spreadReplicas(3, ids, key);
      expect(three.map((p) => p.replicas)).toEqual([1, 1, 1]);
      expect(new Set(three.map((p) => p.server_id))).toEqual(new Set(ids));
      const two = spreadReplicas(2, ids, key);
      expect(two.map((p) => p.replicas)).toEqual([1, 1]);
      const seven = spreadReplicas(7, ids, key);
      expect(seven.reduce((n, p) => n + p.replicas, 0)).toBe(7);
      expect(Math.max(...seven.map((p) => p.replicas)) - Math.min(...seven.map((p) => p.replicas))).toBeLessThanOrEqual(1);
    }
    // Single-replica services do not all land on the same server.
    const firsts = new Set(Array.from({ length: 30 }, (_, i) => spreadReplicas(1, ids, `svc-${i}`)[0].server_id));
    expect(firsts.size).toBeGreaterThan(1);
    expect(() => spreadReplicas(1, [], 'x')).toThrow();
  });

  it('leaves out servers that do not answer, unless none does', async () => {
    const ss = [{ id: 'a' }, { id: 'b' }, { id: 'c' }];
    const hang = () => new Promise(() => undefined);
    const started = Date.now();
    const r = await answering(
      ss,
      (s) => (s.id === 'a' ? Promise.resolve() : s.id === 'b' ? Promise.reject(new Error('ECONNREFUSED')) : hang()),
      200,
    );
    expect(Date.now() - started).toBeLessThan(2000);
    expect(r.up.map((s) => s.id)).toEqual(['a']);
    expect(r.down).toEqual([
      { id: 'b', reason: 'ECONNREFUSED' },
      { id: 'c', reason: 'no answer within 200 ms' },
    ]);
    // None answers: all kept (the deploy then fails naming them, rather than placing nowhere).
    expect((await answering(ss, () => Promise.reject(new Error('down')), 100)).up).toHaveLength(3);
    // A single server is not pinged at all.
    expect((await answering([{ id: 'x' }], () => Promise.reject(new Error('down')), 100)).up).toHaveLength(1);
  });
});
