import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

// Issue 16 (idle RSS): the registry needs rate-limiter-flexible's in-memory limiter only; the
// package's index also loads every other backend (Redis, Mongo, SQL, etcd, …: ~7 MB of RSS).
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(PACKAGE_DIR, 'src');
const sources = (dir: string): string[] =>
  readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? sources(join(dir, f)) : f.endsWith('.ts') ? [join(dir, f)] : []));

describe("rate-limiter-flexible's in-memory limiter, without the package's index", () => {
  it('no source imports the index: they use src/rate-limiter.ts', () => {
    const importers = sources(SRC).filter((f) =>
      /from 'rate-limiter-flexible'/.test(readFileSync(f, 'utf8').replace(/^import type .*$/gm, '')),
    );
    expect(importers).toEqual([]);
  });

  it('the files src/rate-limiter.ts loads bring no other backend, in a fresh node as at start', async () => {
    const files = [...readFileSync(join(SRC, 'rate-limiter.ts'), 'utf8').matchAll(/require\('(rate-limiter-flexible\/[^']+)'\)/g)].map(
      (m) => m[1],
    );
    expect(files).toEqual(['rate-limiter-flexible/lib/RateLimiterMemory.js', 'rate-limiter-flexible/lib/RateLimiterRes.js']);
    const script = `
      const { createRequire } = require('node:module');
      const r = createRequire(${JSON.stringify(join(PACKAGE_DIR, 'package.json'))});
      for (const f of ${JSON.stringify(files)}) r(f);
      console.log(JSON.stringify(Object.keys(require.cache).filter((k) => k.includes('/rate-limiter-flexible/')).map((k) => k.split('/rate-limiter-flexible/')[1])));`;
    const { stdout } = await promisify(execFile)(process.execPath, ['-e', script], { env: { ...process.env, NODE_OPTIONS: '' } });
    const loaded = JSON.parse(stdout) as string[];
    expect(loaded).not.toContain('index.js');
    expect(loaded.filter((f) => /Redis|Mongo|Postgres|MySQL|Dynamo|Prisma|Etcd|Valkey|Drizzle|SQLite|Memcache|Cluster/.test(f))).toEqual(
      [],
    );
  });

  it('limits as the index would: points per window, then a RateLimiterRes refusal', async () => {
    const { RateLimiterMemory, RateLimiterRes } = await import('../src/rate-limiter.js');
    const limiter = new RateLimiterMemory({ points: 2, duration: 60 });
    await limiter.consume('a');
    const second = await limiter.consume('a');
    expect(second.remainingPoints).toBe(0);
    const refused = await limiter.consume('a').then(
      () => null,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RateLimiterRes);
    expect((refused as InstanceType<typeof RateLimiterRes>).msBeforeNext).toBeGreaterThan(50_000);
    expect((await limiter.get('b'))?.remainingPoints ?? 2).toBe(2);
  });
});
