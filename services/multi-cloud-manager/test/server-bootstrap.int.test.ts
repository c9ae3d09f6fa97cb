import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { bootstrapFromProvision, renderUserData, type ServerBootstrap, validateBootstrap } from '../src/domain/server-bootstrap.js';

// The cloud-init user_data of a provisioned server, checked with Debian's cloud-init
// (`cloud-init schema`), parsed back with the YAML parser cloud-init itself uses, and its
// report script run for real against a loopback callback.
const which = (bin: string) => ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].map((d) => join(d, bin)).find((p) => existsSync(p));
// cloud-init brings python3 and python3-yaml (the parser below); the report script needs curl.
const cloudInit = which('cloud-init');
const yaml = spawnSync('python3', ['-c', 'import yaml'], { timeout: 30_000 }).status === 0;
const curl = which('curl');
if (!cloudInit || !yaml)
  console.warn(
    'server-bootstrap: cloud-init (python3-yaml) is not installed (apt-get install cloud-init): the schema and YAML checks are skipped',
  );
if (!curl) console.warn('server-bootstrap: curl is not installed: the report script is not run');

let tmp: string;
let input: ServerBootstrap;

interface CloudConfig {
  packages: string[];
  write_files: Array<{ path: string; permissions: string; owner: string; content: string }>;
  runcmd: string[][];
}

/** YAML → JSON with python3-yaml, cloud-init's own parser. */
function parse(userData: string): CloudConfig {
  const out = execFileSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], {
    input: userData,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out) as CloudConfig;
}

const fileOf = (c: CloudConfig, path: string) => {
  const f = c.write_files.find((w) => w.path === path);
  if (!f) throw new Error(`no ${path} in write_files`);
  return f;
};

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'mcm-bootstrap-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: tmp, stdio: 'ignore', timeout: 30_000 });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=mesh-ca',
  );
  openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'srv.key',
    '-out',
    'srv.pem',
    '-days',
    '2',
    '-subj',
    '/CN=web-1',
  );
  input = {
    serverId: 'web-1',
    caCert: readFileSync(join(tmp, 'ca.pem'), 'utf8'),
    serverCert: readFileSync(join(tmp, 'srv.pem'), 'utf8'),
    serverKey: readFileSync(join(tmp, 'srv.key'), 'utf8'),
    appPorts: [20000, 29999],
    allowFrom: ['203.0.113.10', '10.0.0.0/8', '2001:db8::/32'],
    callbackUrl: 'https://mesh.example.test:8200/servers/provision/callback',
    callbackToken: 'tok_0123456789abcdefghijklmnopqrstuvwxyz',
  };
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('server bootstrap user_data', () => {
  (cloudInit && yaml ? it : it.skip)("passes Debian cloud-init's schema", () => {
    const file = join(tmp, 'user-data.yaml');
    writeFileSync(file, renderUserData(input));
    const res = spawnSync(cloudInit!, ['schema', '--config-file', file], { encoding: 'utf8', timeout: 60_000 });
    expect(`${res.stdout}${res.stderr}`).toMatch(/Valid cloud-config/);
    expect(res.status).toBe(0);
  });

  (yaml ? it : it.skip)('installs Docker with the Engine API on TCP under mutual TLS only, with exactly the given material', () => {
    const text = renderUserData(input);
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    const c = parse(text);
    expect(c.packages).toEqual(expect.arrayContaining(['docker.io', 'nftables']));
    expect(fileOf(c, '/etc/droplet-mesh/tls/ca.pem').content).toBe(input.caCert);
    expect(fileOf(c, '/etc/droplet-mesh/tls/server-cert.pem').content).toBe(input.serverCert);
    const key = fileOf(c, '/etc/droplet-mesh/tls/server-key.pem');
    expect(key.content).toBe(input.serverKey);
    expect(key.permissions).toBe('0600');
    const daemon = JSON.parse(fileOf(c, '/etc/docker/daemon.json').content);
    expect(daemon).toMatchObject({
      tlsverify: true,
      tlscacert: '/etc/droplet-mesh/tls/ca.pem',
      tlscert: '/etc/droplet-mesh/tls/server-cert.pem',
      tlskey: '/etc/droplet-mesh/tls/server-key.pem',
    });
    const dropIn = fileOf(c, '/etc/systemd/system/docker.service.d/droplet-mesh.conf').content;
    expect(dropIn).toContain('ExecStart=/usr/sbin/dockerd -H fd:// -H tcp://0.0.0.0:2376');
    expect(dropIn).not.toMatch(/2375/);
    // Only the mesh reaches the engine and app ports; containers never reach the metadata service.
    const fw = fileOf(c, '/etc/droplet-mesh/firewall.nft').content;
    expect(fw).toContain('ip saddr { 203.0.113.10, 10.0.0.0/8 } tcp dport { 2376, 20000-29999 } accept');
    expect(fw).toContain('ip6 saddr { 2001:db8::/32 } tcp dport { 2376, 20000-29999 } accept');
    expect(fw).toContain('tcp dport { 2376, 20000-29999 } drop');
    expect(fw).toContain('ip daddr 169.254.169.254 drop');
    expect(fileOf(c, '/etc/droplet-mesh/callback-token')).toMatchObject({ content: `${input.callbackToken}\n`, permissions: '0600' });
    expect(c.runcmd.at(-1)).toEqual(['/usr/local/sbin/droplet-mesh-report']);
    const report = fileOf(c, '/usr/local/sbin/droplet-mesh-report').content;
    expect(spawnSync('sh', ['-n'], { input: report }).status).toBe(0);
  });

  (cloudInit && yaml ? it : it.skip)("trusts the mesh image registry's CA for that registry only, and still passes the schema", () => {
    const registry = { host: '10.0.0.5:5050', ca: input.caCert };
    const text = renderUserData({ ...input, registry });
    const file = join(tmp, 'user-data-registry.yaml');
    writeFileSync(file, text);
    const res = spawnSync(cloudInit!, ['schema', '--config-file', file], { encoding: 'utf8', timeout: 60_000 });
    expect(`${res.status} ${res.stdout}${res.stderr}`).toMatch(/^0 .*Valid cloud-config/s);
    expect(fileOf(parse(text), '/etc/docker/certs.d/10.0.0.5:5050/ca.crt')).toMatchObject({ content: registry.ca, permissions: '0644' });
    // Without a registry, no certs.d entry.
    expect(parse(renderUserData(input)).write_files.some((f) => f.path.startsWith('/etc/docker/certs.d/'))).toBe(false);
    // A host that would leave certs.d is refused.
    for (const host of ['../../etc:1', 'a/b:5000', 'reg.example'])
      expect(validateBootstrap({ ...input, registry: { host, ca: input.caCert } })).toContain('registry.host must be host:port');
  });

  it("takes the deployer's provisioning answer as it is", () => {
    const b = bootstrapFromProvision(
      {
        server_id: 'web-2',
        engine_port: 2376,
        ca: input.caCert,
        cert: input.serverCert,
        key: input.serverKey,
        callback_token: input.callbackToken,
        callback_path: '/servers/provision/web-2/ready',
      },
      { deployerUrl: 'https://mesh.example.test:8200', allowFrom: ['203.0.113.10'], appPorts: [20000, 29999] },
    );
    expect(b.callbackUrl).toBe('https://mesh.example.test:8200/servers/provision/web-2/ready');
    expect(validateBootstrap(b)).toEqual([]);
    expect(renderUserData(b)).toContain('/servers/provision/web-2/ready');
  });

  it('refuses input that could reach outside its place in the YAML or the shell', () => {
    const bad: Array<Partial<ServerBootstrap>> = [
      { serverId: 'web\n  - evil' },
      { callbackUrl: "https://x.test/cb'; rm -rf /; '" },
      { callbackUrl: 'https://user:pw@x.test/cb' },
      { callbackToken: 'short' },
      { callbackToken: `${'a'.repeat(40)}$(id)` },
      { allowFrom: [] },
      { allowFrom: ['10.0.0.0/8 } accept; tcp dport 22 drop #'] },
      { serverKey: 'not a key' },
      { caCert: `${input.caCert}\nruncmd: [reboot]` },
      { appPorts: [80, 90] },
    ];
    for (const b of bad) {
      expect(validateBootstrap({ ...input, ...b }).length).toBeGreaterThan(0);
      expect(() => renderUserData({ ...input, ...b })).toThrow(/invalid server bootstrap/);
    }
    expect(validateBootstrap(input)).toEqual([]);
  });

  (yaml && curl ? describe : describe.skip)('the report script, run for real', () => {
    let callback: Server;
    let engineStandIn: TcpServer;
    const calls: Array<{ auth?: string; body: string }> = [];
    let callbackPort: number;
    let enginePort: number;

    beforeAll(async () => {
      callback = createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          calls.push({ auth: req.headers.authorization, body });
          res.writeHead(200).end('{}');
        });
      });
      await new Promise<void>((r) => callback.listen(0, '127.0.0.1', () => r()));
      callbackPort = (callback.address() as { port: number }).port;
      // Something listening where the engine's TLS port would be (the script waits for it).
      engineStandIn = createTcpServer((s) => s.destroy());
      await new Promise<void>((r) => engineStandIn.listen(0, '127.0.0.1', () => r()));
      enginePort = (engineStandIn.address() as { port: number }).port;
    });

    afterAll(async () => {
      await new Promise((r) => callback?.close(r));
      await new Promise((r) => engineStandIn?.close(r));
    });

    const dockerAnswers = () => spawnSync('docker', ['version', '--format', '{{.Server.Version}}'], { timeout: 20_000 }).status === 0;

    it('reports once with the one-time token and forgets it', async () => {
      if (!dockerAnswers()) throw new Error('needs a Docker Engine on /var/run/docker.sock (the script asks it its version)');
      const c = parse(renderUserData({ ...input, enginePort, callbackUrl: `http://127.0.0.1:${callbackPort}/servers/provision/callback` }));
      const dir = join(tmp, 'mesh');
      mkdirSync(join(dir, 'tls'), { recursive: true });
      writeFileSync(join(dir, 'tls/server-cert.pem'), fileOf(c, '/etc/droplet-mesh/tls/server-cert.pem').content);
      writeFileSync(join(dir, 'callback-token'), fileOf(c, '/etc/droplet-mesh/callback-token').content, { mode: 0o600 });
      const script = join(tmp, 'report.sh');
      writeFileSync(script, fileOf(c, '/usr/local/sbin/droplet-mesh-report').content, { mode: 0o700 });
      const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DROPLET_MESH_DIR: dir, DROPLET_MESH_WAIT_TRIES: '5' };
      // Asynchronously: the callback server answers from this process.
      const run = () =>
        new Promise<{ status: number; stderr: string }>((resolve) =>
          execFile('sh', [script], { env, encoding: 'utf8', timeout: 60_000 }, (err, _out, stderr) =>
            resolve({ status: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
          ),
        );
      const first = await run();
      expect(first.stderr).toBe('');
      expect(first.status).toBe(0);
      expect(calls).toHaveLength(1);
      expect(calls[0].auth).toBe(`Bearer ${input.callbackToken}`);
      const body = JSON.parse(calls[0].body);
      expect(body).toMatchObject({ server_id: 'web-1', engine_port: enginePort });
      expect(body.docker_version).toMatch(/^\d+\.\d+/);
      expect(body.certificate_sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      expect(existsSync(join(dir, 'callback-token'))).toBe(false);
      // A second run (a reboot) reports nothing: the token was for one use.
      expect((await run()).status).toBe(0);
      expect(calls).toHaveLength(1);
    }, 90_000);
  });
});
