import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.js';

export interface Pebble {
  directoryUrl: string;
  /** PEM file of the throwaway CA that signed pebble's own API certificate (proxy-manager's ACME_CA_BUNDLE). */
  apiCaFile: string;
  /** The root that issued certificates chain to (pebble makes a new one every start). */
  issuanceRoot(): Promise<string>;
  output(): string;
  stop(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function spawnLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv): { proc: ChildProcess; output: () => string } {
  let out = '';
  const proc = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout?.on('data', (d) => (out = (out + String(d)).slice(-8000)));
  proc.stderr?.on('data', (d) => (out = (out + String(d)).slice(-8000)));
  return { proc, output: () => out };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    proc.kill('SIGTERM');
  });
}

/**
 * Debian's pebble (Let's Encrypt's test CA) on loopback, with pebble-challtestsrv as its DNS
 * answering 127.0.0.1 for every name, so HTTP-01 validation reaches nginx on `httpPort`.
 * Every listener is on 127.0.0.1 (challtestsrv's other servers are switched off).
 */
export async function startPebble(opts: { httpPort: number }): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-pebble-'));
  const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=mesh test pebble api CA',
  ]);
  ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.csr', '-subj', '/CN=localhost']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl([
    'x509',
    '-req',
    '-in',
    'cert.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'cert.pem',
    '-days',
    '2',
    '-extfile',
    'ext.cnf',
  ]);

  const [apiPort, mgmtPort, tlsPort, dnsPort, challMgmtPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  writeFileSync(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${apiPort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: opts.httpPort,
        tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    }),
  );
  const dns = spawnLogged(
    'pebble-challtestsrv',
    [
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${challMgmtPort}`,
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
    ],
    process.env,
  );
  const pebble = spawnLogged('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
    ...process.env,
    PEBBLE_VA_NOSLEEP: '1',
    PEBBLE_WFE_NONCEREJECT: '0',
  });
  const stop = async () => {
    await Promise.all([stopProcess(pebble.proc), stopProcess(dns.proc)]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'pebble-challtestsrv',
      async () => {
        if (dns.proc.exitCode !== null) throw new Error(`challtestsrv exited: ${dns.output()}`);
        return portOpen(challMgmtPort);
      },
      10_000,
    );
    await waitFor(
      'pebble',
      async () => {
        if (pebble.proc.exitCode !== null) throw new Error(`pebble exited: ${pebble.output()}`);
        return (await portOpen(apiPort)) && (await portOpen(mgmtPort));
      },
      10_000,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const apiCa = readFileSync(join(dir, 'ca.pem'));
  return {
    directoryUrl: `https://127.0.0.1:${apiPort}/dir`,
    apiCaFile: join(dir, 'ca.pem'),
    output: () => `${pebble.output()}\n${dns.output()}`,
    issuanceRoot: () =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: mgmtPort, path: '/roots/0', ca: apiCa, timeout: 5000 }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`pebble /roots/0 answered ${res.statusCode}`))));
        });
        req.on('timeout', () => req.destroy(new Error('pebble management did not answer')));
        req.on('error', reject);
        req.end();
      }),
    stop,
  };
}
