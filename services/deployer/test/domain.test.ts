import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { parseMasterKey, sealSecret, openSecret } from '../src/domain/secrets-crypto.js';
import { allocatePort, preferredPort } from '../src/domain/port-allocator.js';
import { detectProjectKind, nodeDockerfile, pythonDockerfile, type ProjectFiles } from '../src/domain/dockerfile-gen.js';
import { tagsToRemove } from '../src/domain/image-retention.js';
import { StepTimeout, withTimeout } from '../src/domain/step-timeout.js';
import { redactValues } from '../src/domain/redact.js';
import { deployTag, targetId } from '../src/domain/naming.js';
import { deployerConfigSchema } from '../src/config.js';

const files = (m: Record<string, string>): ProjectFiles => ({ has: (f) => f in m, read: (f) => m[f] });

describe('secrets at rest', () => {
  const key = randomBytes(32);
  it('round-trips and never stores the plaintext', () => {
    const sealed = sealSecret(key, 'hunter2-very-secret', 'p/prod/DB_PASSWORD');
    expect(JSON.stringify(sealed)).not.toContain('hunter2');
    expect(openSecret(key, sealed, 'p/prod/DB_PASSWORD')).toBe('hunter2-very-secret');
  });
  it('refuses another key or another name (GCM tag and bound context)', () => {
    const sealed = sealSecret(key, 'x', 'p/prod/A');
    expect(() => openSecret(randomBytes(32), sealed, 'p/prod/A')).toThrow();
    expect(() => openSecret(key, sealed, 'p/prod/B')).toThrow();
  });
  it('accepts 32-byte keys as hex or base64 and nothing else', () => {
    const raw = randomBytes(32);
    expect(parseMasterKey(raw.toString('hex')).equals(raw)).toBe(true);
    expect(parseMasterKey(raw.toString('base64')).equals(raw)).toBe(true);
    expect(() => parseMasterKey('short')).toThrow(/32 bytes/);
    expect(() => parseMasterKey(randomBytes(16).toString('base64'))).toThrow(/32 bytes/);
  });
  it('config: a missing or bad DEPLOYER_MASTER_KEY names the variable', () => {
    const missing = deployerConfigSchema.safeParse({});
    expect(missing.success).toBe(false);
    expect(JSON.stringify(missing.error?.issues)).toContain('DEPLOYER_MASTER_KEY');
    const bad = deployerConfigSchema.safeParse({ DEPLOYER_MASTER_KEY: 'abc' });
    expect(bad.error?.issues[0].path).toEqual(['DEPLOYER_MASTER_KEY']);
    const ok = deployerConfigSchema.parse({ DEPLOYER_MASTER_KEY: randomBytes(32).toString('hex'), DEPLOY_PORT_RANGE: '21000-21999' });
    expect(ok.DEPLOY_PORT_RANGE).toEqual([21000, 21999]);
    expect(
      deployerConfigSchema.safeParse({ DEPLOYER_MASTER_KEY: randomBytes(32).toString('hex'), DEPLOY_PORT_RANGE: '80-90' }).success,
    ).toBe(false);
  });
});

describe('port allocation', () => {
  const range: [number, number] = [20000, 20099];
  it('is deterministic per key and differs per slot', async () => {
    const a = await allocatePort({ key: 'p/prod/web/blue/0', range, taken: new Set() });
    expect(await allocatePort({ key: 'p/prod/web/blue/0', range, taken: new Set() })).toBe(a);
    expect(a).toBe(preferredPort('p/prod/web/blue/0', range));
    expect(preferredPort('p/prod/web/green/0', range)).not.toBe(-1);
  });
  it('skips taken and busy ports and wraps around the range', async () => {
    const first = preferredPort('k', range);
    const got = await allocatePort({
      key: 'k',
      range,
      taken: new Set([first]),
      isFree: async (p) => p !== (first + 1 > 20099 ? 20000 : first + 1),
    });
    expect(got).not.toBe(first);
    expect(got).toBeGreaterThanOrEqual(20000);
    expect(got).toBeLessThanOrEqual(20099);
  });
  it('fails clearly when the range is full', async () => {
    const all = new Set(Array.from({ length: 100 }, (_, i) => 20000 + i));
    await expect(allocatePort({ key: 'k', range, taken: all })).rejects.toThrow(/no free port/);
  });
});

describe('generated Dockerfiles', () => {
  it('detects the project kind', () => {
    expect(detectProjectKind(files({ Dockerfile: '', 'package.json': '{}' }))).toBe('dockerfile');
    expect(detectProjectKind(files({ 'package.json': '{}' }))).toBe('node');
    expect(detectProjectKind(files({ 'requirements.txt': '' }))).toBe('python');
    expect(detectProjectKind(files({ 'README.md': '' }))).toBe('unknown');
  });
  it('node: base image as a build arg, start script or main as the command', () => {
    const withStart = nodeDockerfile(files({ 'package.json': JSON.stringify({ scripts: { start: 'node server.js' } }) }), 'node:20-slim');
    expect(withStart).toMatch(/^ARG BASE_IMAGE=node:20-slim\nFROM \$\{BASE_IMAGE\}/);
    expect(withStart).toContain('CMD ["/bin/sh", "-c", "node server.js"]');
    expect(withStart).not.toContain('npm');
    const withDeps = nodeDockerfile(
      files({ 'package.json': JSON.stringify({ main: 'app.js', dependencies: { x: '1' } }), 'package-lock.json': '' }),
      'node:20-slim',
    );
    expect(withDeps).toContain('npm ci --omit=dev');
    expect(withDeps).toContain('CMD ["node", "app.js"]');
  });
  it('python: requirements, Procfile web command', () => {
    const df = pythonDockerfile(files({ 'requirements.txt': 'flask', Procfile: 'web: gunicorn app:app\n' }), 'python:3.12-slim');
    expect(df).toContain('pip install --no-cache-dir -r requirements.txt');
    expect(df).toContain('CMD ["/bin/sh", "-c", "gunicorn app:app"]');
    expect(pythonDockerfile(files({ 'main.py': '' }), 'python:3.12-slim')).toContain('CMD ["python", "main.py"]');
  });
});

describe('small rules', () => {
  it('keeps the newest KEEP_IMAGES tags and any tag in use', () => {
    const tags = ['a', 'b', 'c', 'd'].map((t, i) => ({ tag: t, created_at: `2026-01-0${i + 1}T00:00:00Z` }));
    expect(tagsToRemove(tags, 2, new Set()).sort()).toEqual(['a', 'b']);
    expect(tagsToRemove(tags, 2, new Set(['a']))).toEqual(['b']);
  });
  it('a step past its deadline fails with its name and aborts its signal', async () => {
    let aborted = false;
    await expect(
      withTimeout('health', 50, (signal) => new Promise((r) => signal.addEventListener('abort', () => ((aborted = true), r(undefined))))),
    ).rejects.toBeInstanceOf(StepTimeout);
    expect(aborted).toBe(true);
    await expect(withTimeout('x', 1000, async () => 7)).resolves.toBe(7);
  });
  it('masks secret values in text', () => {
    expect(redactValues('db=s3cr3t-value ok', ['s3cr3t-value'])).toBe('db=[redacted] ok');
  });
  it('names targets and deploy tags', () => {
    expect(targetId('shop', 'web', 'prod')).toBe('app-shop-web-prod');
    expect(deployTag('mesh-apps/shop-web', '0123abcd-4567-89ef-0123-456789abcdef')).toBe('mesh-apps/shop-web:deploy_0123abcd');
  });
});
