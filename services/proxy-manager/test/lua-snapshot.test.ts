import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DynamicUpstreams } from '../src/nginx/lua-balancer.js';

// What the master does with the snapshot at every start and reload (`apply_lines` in the Lua
// source): lines in order, a later one wins, an empty member list deletes.
function replay(text: string): Map<string, string> {
  const dict = new Map<string, string>();
  for (const line of text.split('\n').filter(Boolean)) {
    const [name, servers] = line.split('\t');
    if (servers === '') dict.delete(name);
    else dict.set(name, servers);
  }
  return dict;
}

let dir: string;
let control: Server;
let posted: string[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pm-snapshot-'));
  posted = [];
  // Stands in for nginx's control location: records what the droplet posts.
  control = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      posted.push(body);
      res.end('ok\n');
    });
  });
  await new Promise<void>((resolve) => control.listen(join(dir, 'control.sock'), resolve));
});
afterEach(async () => {
  await new Promise((resolve) => control.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const server = (port: number) => [{ address: '10.0.0.1', port, weight: 1 }];

describe('upstream members snapshot', () => {
  it('a change posts and appends only its own upstream, and the compacted snapshot replays to the members', async () => {
    const dyn = new DynamicUpstreams({ luaDir: join(dir, 'lua'), stateDir: dir, socket: join(dir, 'control.sock') });
    await dyn.prepare();
    const routes = 1500;
    const all = new Map(Array.from({ length: routes }, (_, i) => [`up_${i}`, server(1000 + i)] as const));
    await dyn.apply(all, false); // before nginx starts: one whole write, nothing posted
    expect(posted).toEqual([]);
    expect(replay(await readFile(join(dir, 'upstreams.snapshot'), 'utf8')).size).toBe(routes);

    // 3,000 single-upstream changes (enough for the appended lines to be compacted at least once).
    const expected = new Map([...all].map(([n, s]) => [n, `${s[0].address}|${s[0].port}|1`]));
    let changes = 0;
    for (let i = 0; i < 3000; i++) {
      const name = `up_${(i * 7) % routes}` as const;
      if (i % 10 === 9) {
        await dyn.apply(new Map([[name, null]]));
        if (expected.delete(name)) changes++; // removing an absent upstream changes nothing
      } else {
        await dyn.apply(new Map([[name, server(20_000 + i)]]));
        expected.set(name, `10.0.0.1|${20_000 + i}|1`);
        changes++;
      }
      expect(posted.at(-1)?.split('\n').filter(Boolean)).toHaveLength(1);
    }
    expect(posted).toHaveLength(changes);
    expect(changes).toBeGreaterThan(2500);
    await dyn.flush();
    expect(dyn.compactions).toBeGreaterThan(0);
    const snapshot = await readFile(join(dir, 'upstreams.snapshot'), 'utf8');
    expect(replay(snapshot)).toEqual(expected);
    // Compaction bounds the file: at most one line per upstream plus the appended ones since.
    expect(snapshot.split('\n').filter(Boolean).length).toBeLessThanOrEqual(routes + 1000 + 1);
  }, 60_000);

  it('changes made while a compaction writes its copy are not lost', async () => {
    const dyn = new DynamicUpstreams({ luaDir: join(dir, 'lua'), stateDir: dir, socket: join(dir, 'control.sock') });
    await dyn.prepare();
    const expected = new Map<string, string>();
    // Concurrent changes (as the reconciler's rounds and replica sync may make them).
    await Promise.all(
      Array.from({ length: 2500 }, (_, i) => {
        const name = `u_${i % 300}`;
        expected.set(name, `10.0.0.1|${i + 1}|1`);
        return dyn.apply(new Map([[name, server(i + 1)]]));
      }),
    );
    await dyn.flush();
    expect(dyn.compactions).toBeGreaterThan(0);
    expect(replay(await readFile(join(dir, 'upstreams.snapshot'), 'utf8'))).toEqual(expected);
  }, 60_000);
});
