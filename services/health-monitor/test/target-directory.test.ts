import { describe, expect, it } from '@jest/globals';
import type { Target } from '../src/domain/types.js';
import { TargetDirectory, type TargetChange } from '../src/targets/target-directory.js';
import type { TargetSource } from '../src/targets/target-source.js';

const at = (s: number) => new Date(Date.UTC(2025, 0, 1, 0, 0, s)).toISOString();
const app = (port: number, updatedS: number): Target => ({
  id: 'app',
  kind: 'service',
  url: `http://127.0.0.1:${port}`,
  health_path: '/health',
  recovery: ['restart', 'alert'],
  metadata: {},
  source: 'registry',
  updated_at: at(updatedS),
});

/** A registry stand-in: `truth` answers fresh reads, `listing` is what a (maybe stale) list returns. */
class MemorySource implements TargetSource {
  truth = new Map<string, Target>();
  listing: Target[] = [];
  lookups = 0;
  lookupDelayMs = 0;
  failing = false;
  async list() {
    return this.listing;
  }
  async lookup(id: string) {
    this.lookups++;
    if (this.lookupDelayMs) await new Promise((r) => setTimeout(r, this.lookupDelayMs));
    if (this.failing) throw new Error('registry unreachable');
    return this.truth.get(id) ?? null;
  }
}

function setup() {
  const source = new MemorySource();
  const changes: TargetChange[] = [];
  let now = 1_000_000;
  const dir = new TargetDirectory(source, (c) => changes.push(...c), {
    listStalenessMs: 10_000,
    hintIntervalMs: 1000,
    readTimeoutMs: 200,
    now: () => now,
  });
  return { source, dir, changes, advance: (ms: number) => (now += ms) };
}

describe('target directory', () => {
  it('a fresh read moves a target, and a stale listing cannot move it back', async () => {
    const { source, dir, changes } = setup();
    source.listing = [app(2001, 0)];
    await dir.refresh();
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2001');

    source.truth.set('app', app(2002, 5)); // redeployed; the cached listing still says 2001
    const moved = await Promise.all([dir.reread('app'), dir.reread('app')]);
    expect(source.lookups).toBe(1); // concurrent reads share one request
    expect(moved[0]).toMatchObject({ kind: 'moved', from: { url: 'http://127.0.0.1:2001' }, target: { url: 'http://127.0.0.1:2002' } });
    expect(changes.at(-1)).toMatchObject({ id: 'app', before: { url: 'http://127.0.0.1:2001' }, after: { url: 'http://127.0.0.1:2002' } });

    await dir.refresh();
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2002');
    // A listing of a newer version of the record (moved again) wins over our read.
    source.listing = [app(2003, 9)];
    await dir.refresh();
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2003');
    expect((await dir.reread('app')).kind).toBe('moved'); // truth is still 2002: a fresh read settles it
  });

  it('a target read as gone stays gone until a listing catches up or shows it registered again', async () => {
    const { source, dir, changes, advance } = setup();
    source.listing = [app(2001, 0)];
    source.truth.set('app', app(2001, 0));
    await dir.refresh();
    source.truth.delete('app');
    expect(await dir.reread('app')).toMatchObject({ kind: 'gone', from: { id: 'app' } });
    expect(changes.at(-1)).toEqual({ id: 'app', before: expect.objectContaining({ id: 'app' }) });
    await dir.refresh();
    expect(dir.has('app')).toBe(false);
    source.listing = [app(2004, 20)]; // registered again
    await dir.refresh();
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2004');

    source.truth.delete('app');
    await dir.reread('app');
    source.listing = [app(2004, 20)];
    advance(11_000); // past any listing's staleness: the listing is the truth again
    await dir.refresh();
    expect(dir.has('app')).toBe(true);
  });

  it('a read that fails or hangs is unverified and changes nothing', async () => {
    const { source, dir, changes } = setup();
    source.listing = [app(2001, 0)];
    await dir.refresh();
    const before = changes.length;
    source.failing = true;
    expect(await dir.reread('app')).toMatchObject({ kind: 'unverified', target: { url: 'http://127.0.0.1:2001' } });
    source.failing = false;
    source.lookupDelayMs = 1000;
    source.truth.set('app', app(2002, 5));
    const started = Date.now();
    expect((await dir.reread('app')).kind).toBe('unverified');
    expect(Date.now() - started).toBeLessThan(900);
    expect(changes.length).toBe(before);
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2001');
  });

  it('a peer reporting on another address makes it read the record, at most once per interval', async () => {
    const { source, dir, advance } = setup();
    source.listing = [app(2001, 0)];
    source.truth.set('app', app(2002, 5));
    await dir.refresh();
    dir.hint('app', 'http://127.0.0.1:2001/health');
    expect(source.lookups).toBe(0);
    dir.hint('app', 'http://127.0.0.1:2002/health');
    dir.hint('app', 'http://127.0.0.1:2002/health');
    await new Promise((r) => setImmediate(r));
    expect(source.lookups).toBe(1);
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2002');
    advance(2000);
    dir.hint('app', 'http://127.0.0.1:2001/health'); // a peer still behind: we re-check once, stay put
    await new Promise((r) => setImmediate(r));
    expect(source.lookups).toBe(2);
    expect(dir.get('app')?.url).toBe('http://127.0.0.1:2002');
  });
});
