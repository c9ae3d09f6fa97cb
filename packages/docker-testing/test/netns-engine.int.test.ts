import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ensureBusyboxImage, ensureDockerEngine } from '../src/index.js';
import { copyImages, type NamespacedEngine, startNamespacedEngine } from '../src/netns-engine.js';

// A dockerd in its own network namespace, mutual TLS only: the building block of the
// deployer's multi-server tests. Certificates come from the openssl binary here (the
// deployer's tests use its mesh CA).
let tmp: string;
let engine: NamespacedEngine | undefined;
const pem = (f: string) => readFileSync(join(tmp, f), 'utf8');

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: tmp, stdio: 'ignore', timeout: 30_000 });
}

function issue(ca: string, name: string, ext: string): void {
  openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${name}`,
  );
  writeFileSync(join(tmp, `${name}.ext`), ext);
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${ca}.pem`,
    '-CAkey',
    `${ca}.key`,
    '-CAcreateserial',
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-extfile',
    `${name}.ext`,
  );
}

function selfCa(name: string): void {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
  );
}

/** GET /_ping over TLS with the given client material: the body, or the error code. */
function ping(e: NamespacedEngine, tls: { ca: string; cert?: string; key?: string }): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: e.address, port: e.port, path: '/_ping', timeout: 5000, ...tls }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
    req.end();
  });
}

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'netns-engine-test-'));
  selfCa('ca');
  selfCa('other');
  issue('ca', 'client', 'extendedKeyUsage=clientAuth\n');
  issue('other', 'stranger', 'extendedKeyUsage=clientAuth\n');
  engine = await startNamespacedEngine({
    tls: (address) => {
      issue('ca', 'server', `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`);
      return { ca: pem('ca.pem'), cert: pem('server.pem'), key: pem('server.key') };
    },
  });
}, 120_000);

afterAll(async () => {
  await engine?.stop();
  rmSync(tmp, { recursive: true, force: true });
}, 60_000);

describe('a Docker Engine in its own network namespace', () => {
  it('answers over mutual TLS only, to clients of its CA', async () => {
    const e = engine!;
    expect(e.dockerHost).toMatch(/^tcp:\/\/10\.231\.\d+\.\d+:2376$/);
    expect(await ping(e, { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') })).toBe('200 OK');
    // No client certificate, or one from another CA: the handshake fails.
    expect(await ping(e, { ca: pem('ca.pem') })).toMatch(/^error /);
    expect(await ping(e, { ca: pem('ca.pem'), cert: pem('stranger.pem'), key: pem('stranger.key') })).toMatch(/^error /);
    // A client trusting another CA refuses the engine's certificate.
    expect(await ping(e, { ca: pem('other.pem'), cert: pem('client.pem'), key: pem('client.key') })).toMatch(/^error /);
  });

  it('runs containers from images copied from the host engine, with ports published at its address', async () => {
    const e = engine!;
    const host = await ensureDockerEngine();
    const image = await ensureBusyboxImage(host);
    await copyImages(host, e.docker, [image]);
    await e.docker.createNetwork({ Name: 'apps', Driver: 'bridge' });
    const c = await e.docker.createContainer({
      Image: image,
      Cmd: ['sh', '-c', 'mkdir -p /w && echo from-netns > /w/index.html && exec httpd -f -p 8080 -h /w'],
      ExposedPorts: { '8080/tcp': {} },
      HostConfig: { NetworkMode: 'apps', PortBindings: { '8080/tcp': [{ HostIp: e.address, HostPort: '20080' }] } },
    });
    await c.start();
    let body = '';
    for (let i = 0; i < 40 && !body.includes('from-netns'); i++) {
      body = await fetch(`http://${e.address}:20080/`, { signal: AbortSignal.timeout(2000) })
        .then((r) => r.text())
        .catch(() => '');
      if (!body) await new Promise((r) => setTimeout(r, 250));
    }
    expect(body).toContain('from-netns');
  }, 120_000);

  it('kill() loses the engine at once, like a dead server; stop() still cleans up after it', async () => {
    const e = engine!;
    engine = undefined;
    e.kill();
    expect(await ping(e, { ca: pem('ca.pem'), cert: pem('client.pem'), key: pem('client.key') })).toMatch(/^error /);
    expect(
      await fetch(`http://${e.address}:20080/`, { signal: AbortSignal.timeout(2000) }).then(
        () => 'answered',
        () => 'no answer',
      ),
    ).toBe('no answer');
    await e.stop();
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(e.netns);
    expect(existsSync(e.dir)).toBe(false);
    expect(readFileSync('/proc/self/mounts', 'utf8')).not.toContain(e.dir);
    const procs = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' });
    expect(procs).not.toContain(e.dir);
  }, 60_000);
});
