import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { checkUpload, covers, UploadRefused } from '../src/acme/upload-check.js';
import { createTestCa, type TestCa } from './support/certs.js';

// Real certificates from the openssl CLI; the checks run in-process.
let ca: TestCa;
beforeAll(() => {
  ca = createTestCa();
});
afterAll(() => ca?.close());

const refusal = (f: () => unknown): UploadRefused => {
  try {
    f();
  } catch (err) {
    if (err instanceof UploadRefused) return err;
    throw err;
  }
  throw new Error('expected the upload to be refused');
};

describe('covers', () => {
  it('a wildcard covers exactly one more label, never the bare domain or two labels', () => {
    expect(covers(['*.example.test'], 'a.example.test')).toBe(true);
    expect(covers(['*.example.test'], 'A.Example.Test')).toBe(true);
    expect(covers(['*.example.test'], 'example.test')).toBe(false);
    expect(covers(['*.example.test'], 'b.a.example.test')).toBe(false);
    expect(covers(['*.example.test'], 'aexample.test')).toBe(false);
    expect(covers(['*.example.test'], 'a.example.test.evil')).toBe(false);
    expect(covers(['example.test'], 'example.test')).toBe(true);
    expect(covers(['example.test'], 'a.example.test')).toBe(false);
  });
});

describe('checkUpload', () => {
  it('accepts a wildcard chain with its key and describes it without the key', () => {
    const c = ca.issue({ names: ['*.example.test', 'example.test'] });
    const checked = checkUpload(c.chainPem, c.keyPem, Date.now());
    expect(checked.info.names).toEqual(['*.example.test', 'example.test']);
    expect(checked.info.id).toMatch(/^[0-9a-f]{16}$/);
    expect(checked.info.issuer).toContain('Mesh Test Intermediate');
    expect(JSON.stringify(checked.info)).not.toMatch(/PRIVATE KEY/);
    expect(checked.chainPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
  });

  it('refuses a key that does not match, naming the key', () => {
    const c = ca.issue({ names: ['k.example.test'] });
    const r = refusal(() => checkUpload(c.chainPem, ca.otherKey(), Date.now()));
    expect(r.field).toBe('key');
    expect(r.message).toMatch(/does not match/);
  });

  it('refuses an expired and a not-yet-valid certificate', () => {
    const old = ca.issue({ names: ['old.example.test'], start: '20200101000000Z', end: '20200201000000Z' });
    expect(refusal(() => checkUpload(old.chainPem, old.keyPem, Date.now())).message).toMatch(/expired/);
    const c = ca.issue({ names: ['soon.example.test'] });
    // The same certificate judged at a moment before it began.
    expect(refusal(() => checkUpload(c.chainPem, c.keyPem, Date.now() - 86_400_000)).message).toMatch(/not valid before/);
    // ...and after it ended.
    expect(refusal(() => checkUpload(c.chainPem, c.keyPem, Date.now() + 40 * 86_400_000)).message).toMatch(/expired/);
  });

  it('refuses a chain in the wrong order, garbage, no certificate and an encrypted key', () => {
    const c = ca.issue({ names: ['o.example.test'] });
    expect(refusal(() => checkUpload(ca.intermediatePem + c.certPem, c.keyPem, Date.now())).field).toBe('certificate');
    expect(refusal(() => checkUpload('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', c.keyPem, Date.now())).field).toBe(
      'certificate',
    );
    expect(refusal(() => checkUpload('hello', c.keyPem, Date.now())).field).toBe('certificate');
    expect(refusal(() => checkUpload(c.chainPem, 'not a key', Date.now())).field).toBe('key');
    expect(
      refusal(() => checkUpload(c.chainPem, '-----BEGIN ENCRYPTED PRIVATE KEY-----\nx\n-----END ENCRYPTED PRIVATE KEY-----', Date.now()))
        .field,
    ).toBe('key');
  });

  it("a refusal's message never quotes the key", () => {
    const c = ca.issue({ names: ['q.example.test'] });
    const other = ca.otherKey();
    const body = other.split('\n')[1];
    expect(refusal(() => checkUpload(c.chainPem, other, Date.now())).message).not.toContain(body);
  });
});
