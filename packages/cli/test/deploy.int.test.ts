import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { list as listTar } from 'tar';
import { expectNoStack, runCli, scratchHome } from './support/cli.js';
import { FAILURE, startFakeDeployer, SUCCESS, TOKEN } from './support/fake-deployer.js';

let deployer: Awaited<ReturnType<typeof startFakeDeployer>>;
const home = scratchHome();
const env = () => ({ HOME: home.home, MESHCTL_CONFIG: home.config, MESHCTL_TOKEN: TOKEN, MESHCTL_DEPLOYER_URL: deployer.url });
const deployArgs = ['deploy', 'web', '--project', 'shop', '--env', 'prod'];

beforeAll(async () => {
  deployer = await startFakeDeployer();
});
afterAll(async () => {
  await deployer?.close();
  home.remove();
});

describe('meshctl deploy: following the SSE stream', () => {
  it('an image deploy that succeeds shows each step and exits 0', async () => {
    deployer.play({ events: SUCCESS });
    const r = await runCli([...deployArgs, '--image', 'app:1'], env());
    expect(r.code).toBe(0);
    expect(deployer.received[0].json).toEqual({
      project: 'shop',
      service: 'web',
      environment: 'prod',
      source: { image: 'app:1' },
      queue: true,
    });
    expect(r.stdout).toMatch(/^deployment [0-9a-f-]{36} succeeded\n$/);
    // Not a terminal: one line per step change instead of a redrawn bar.
    expect(r.stderr).toContain('[  0%] pull running');
    expect(r.stderr).toContain('  pull: ok (2.0s)');
    expect(r.stderr).toContain('[100%] switch succeeded');
    expect(r.stderr).not.toContain('pulling app:1');
    expect((await runCli([...deployArgs, '--image', 'app:1', '--verbose'], env())).stderr).toContain('  | pulling app:1');
  });

  it('a deploy that ends failed exits non-zero with the reason', async () => {
    deployer.play({ events: FAILURE });
    const r = await runCli([...deployArgs, '--image', 'app:2'], env());
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^deployment \S+ failed: health: no answer on \/health within 30s\n$/);
    expect(r.stderr).toContain('  health: FAILED (1.0s) - no answer on /health within 30s');
    expectNoStack(r.stderr);
  });

  it('--json prints only the final record and still exits non-zero on failure', async () => {
    deployer.play({ events: FAILURE });
    const r = await runCli([...deployArgs, '--image', 'app:2', '--json'], env());
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'failed', reason: 'health: no answer on /health within 30s', project: 'shop' });
    expect(r.stderr).toBe('');
  });

  it('a dropped stream is resumed without repeating steps', async () => {
    deployer.play({ events: SUCCESS, dropFirstStreamAfter: 3 });
    const r = await runCli([...deployArgs, '--image', 'app:3'], env());
    expect(r.code).toBe(0);
    expect(deployer.streams.length).toBe(2);
    expect(r.stderr.match(/pull: ok/g)).toHaveLength(1);
    expect(r.stdout).toMatch(/succeeded/);
  });

  it('--git URL#ref sends a git source; --detach returns at once', async () => {
    deployer.play({ events: SUCCESS });
    const r = await runCli(
      [...deployArgs, '--git', 'https://git.example/shop.git#v2', '--git-path', 'web', '--detach', '--no-queue'],
      env(),
    );
    expect(r.code).toBe(0);
    expect(deployer.received[0].json).toMatchObject({
      source: { git: { url: 'https://git.example/shop.git', ref: 'v2', path: 'web' } },
      queue: false,
    });
    expect(r.stdout).toMatch(/^deployment \S+ queued/);
    expect(deployer.streams).toHaveLength(0);
  });

  it('--dir uploads a .tar.gz of the directory (without .git and node_modules) as multipart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshctl-src-'));
    try {
      writeFileSync(join(dir, 'index.js'), 'console.log("hi")\n');
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'sub', 'a.txt'), 'a\n');
      mkdirSync(join(dir, 'node_modules', 'left-pad'), { recursive: true });
      writeFileSync(join(dir, 'node_modules', 'left-pad', 'index.js'), '');
      mkdirSync(join(dir, '.git'));
      writeFileSync(join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
      deployer.play({ events: SUCCESS });
      const scratchBefore = readdirSync(tmpdir()).filter((f) => f.startsWith('meshctl-'));
      const r = await runCli([...deployArgs, '--dir', dir], env());
      expect(r.code).toBe(0);
      const got = deployer.received[0];
      expect(got.contentType).toMatch(/^multipart\/form-data; boundary=/);
      expect(got.fields).toEqual({ project: 'shop', service: 'web', environment: 'prod', queue: 'true' });
      expect(got.archive!.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
      const out = mkdtempSync(join(tmpdir(), 'meshctl-tar-'));
      const archivePath = join(out, 'a.tar.gz');
      writeFileSync(archivePath, got.archive!);
      const entries: string[] = [];
      await listTar({ file: archivePath, onReadEntry: (e) => entries.push(e.path.replace(/^\.\//, '').replace(/\/$/, '')) });
      rmSync(out, { recursive: true, force: true });
      expect(entries.filter(Boolean).sort()).toEqual(['index.js', 'sub', 'sub/a.txt']);
      // The temporary archive is gone.
      expect(readdirSync(tmpdir()).filter((f) => f.startsWith('meshctl-') && !f.startsWith('meshctl-tar-'))).toEqual(scratchBefore);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a refused deploy prints the UDC error', async () => {
    deployer.play({ events: [], rejectWith: { status: 409, code: 'CONFLICT', message: "a deploy of 'web' is already running" } });
    const r = await runCli([...deployArgs, '--image', 'app:1', '--no-queue'], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("error: CONFLICT: a deploy of 'web' is already running\n");
  });
});

describe('meshctl rollback', () => {
  it('redeploys and follows the new deployment; a bad id is NOT_FOUND', async () => {
    deployer.play({ events: SUCCESS });
    const first = JSON.parse((await runCli([...deployArgs, '--image', 'app:1', '--json'], env())).stdout);
    const r = await runCli(['rollback', first.id], env());
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`rolling back to ${first.id}`);
    expect(r.stdout).toMatch(/succeeded/);
    const missing = await runCli(['rollback', '00000000-0000-4000-8000-000000000000'], env());
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("error: NOT_FOUND: no deployment '00000000-0000-4000-8000-000000000000'\n");
  });
});
