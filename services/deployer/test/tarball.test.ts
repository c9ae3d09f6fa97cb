import { afterAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { extractTarball, UnsafeArchive } from '../src/source/tarball.js';

const root = mkdtempSync(join(tmpdir(), 'deployer-tar-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Write a tar.gz whose entry paths we choose, including hostile ones. */
async function rawArchive(
  name: string,
  entries: Array<{ path: string; body?: string; type?: 'File' | 'SymbolicLink'; linkpath?: string }>,
): Promise<string> {
  const file = join(root, name);
  const pack = new tar.Pack({ gzip: true, portable: true });
  const chunks: Buffer[] = [];
  pack.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    const body = Buffer.from(e.body ?? '');
    const header = new tar.Header({
      path: e.path,
      type: e.type ?? 'File',
      size: e.type === 'SymbolicLink' ? 0 : body.length,
      mode: 0o644,
      linkpath: e.linkpath,
      mtime: new Date(),
    });
    const entry = new tar.ReadEntry(header);
    pack.add(entry);
    if (e.type !== 'SymbolicLink') entry.write(body);
    entry.end();
  }
  pack.end();
  await done;
  writeFileSync(file, Buffer.concat(chunks));
  return file;
}

describe('uploaded archive extraction', () => {
  it('extracts an ordinary project', async () => {
    const src = join(root, 'proj');
    mkdirSync(join(src, 'lib'), { recursive: true });
    writeFileSync(join(src, 'package.json'), '{}');
    writeFileSync(join(src, 'lib/a.js'), 'x');
    const file = join(root, 'ok.tar.gz');
    await tar.c({ gzip: true, file, cwd: src }, ['.']);
    const out = mkdtempSync(join(root, 'x-'));
    await extractTarball(file, out, { maxBytes: 1e6, maxEntries: 100 });
    expect(readFileSync(join(out, 'lib/a.js'), 'utf8')).toBe('x');
  });
  it('refuses paths that climb out of the target', async () => {
    const file = await rawArchive('evil.tar.gz', [{ path: '../../escaped.txt', body: 'pwned' }]);
    const out = mkdtempSync(join(root, 'y-'));
    await expect(extractTarball(file, out, { maxBytes: 1e6, maxEntries: 100 })).rejects.toBeInstanceOf(UnsafeArchive);
    expect(existsSync(join(root, 'escaped.txt'))).toBe(false);
  });
  it('refuses symlinks', async () => {
    const file = await rawArchive('link.tar.gz', [{ path: 'etc', type: 'SymbolicLink', linkpath: '/etc' }]);
    await expect(extractTarball(file, mkdtempSync(join(root, 'z-')), { maxBytes: 1e6, maxEntries: 100 })).rejects.toThrow(/SymbolicLink/);
  });
  it('refuses archives over the size or entry limit', async () => {
    const big = await rawArchive('big.tar.gz', [{ path: 'a.bin', body: 'x'.repeat(5000) }]);
    await expect(extractTarball(big, mkdtempSync(join(root, 'b-')), { maxBytes: 1000, maxEntries: 100 })).rejects.toThrow(/bytes/);
    const many = await rawArchive(
      'many.tar.gz',
      Array.from({ length: 5 }, (_, i) => ({ path: `f${i}`, body: 'x' })),
    );
    await expect(extractTarball(many, mkdtempSync(join(root, 'm-')), { maxBytes: 1e6, maxEntries: 3 })).rejects.toThrow(/entries/);
  });
  it('refuses a file that is not a gzip tar', async () => {
    const file = join(root, 'not.tar.gz');
    writeFileSync(file, 'plain text');
    await expect(extractTarball(file, mkdtempSync(join(root, 'n-')), { maxBytes: 1e6, maxEntries: 10 })).rejects.toThrow();
  });
});
