// The registry's TLS material: a CA of its own and a server certificate naming every
// address the engines reach the registry at. Made with Debian's openssl and kept as files
// (keys 0600); the CA certificate is what each engine trusts (certs.d/<host:port>/ca.crt).
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

export interface RegistryTls {
  /** PEM of the CA that signed the registry's certificate (engines trust this). */
  ca: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`openssl ${args[0]} failed: ${String(e.stderr ?? '').trim() || e.message}`);
  }
}

/** True when the certificate names every host and stays valid for at least a week. */
function covers(certFile: string, hosts: string[]): boolean {
  try {
    const cert = new X509Certificate(readFileSync(certFile));
    if (Date.parse(cert.validTo) < Date.now() + 7 * 86_400_000) return false;
    return hosts.every((h) => (isIP(h) ? cert.checkIP(h) !== undefined : cert.checkHost(h) !== undefined));
  } catch {
    return false;
  }
}

/**
 * The CA and server certificate under `dir`, made when missing or when the certificate no
 * longer names every host (the CA is kept, so engines that trust it keep trusting).
 */
export function ensureRegistryTls(dir: string, hosts: string[]): RegistryTls {
  if (hosts.length === 0) throw new Error('the registry certificate needs at least one host');
  for (const h of hosts) if (!/^[A-Za-z0-9.:-]{1,253}$/.test(h)) throw new Error(`'${h}' is not a host name or an IP address`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caFile = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  const certFile = join(dir, 'registry.crt');
  const keyFile = join(dir, 'registry.key');
  if (!existsSync(caFile) || !existsSync(caKey)) {
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'ca.key',
        '-out',
        'ca.crt',
        '-days',
        '3650',
        '-subj',
        '/O=Droplet Mesh/CN=Droplet Mesh image registry CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ],
      dir,
    );
    rmSync(certFile, { force: true });
  }
  if (!existsSync(certFile) || !existsSync(keyFile) || !covers(certFile, hosts)) {
    const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    writeFileSync(
      join(dir, 'registry.ext'),
      `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`,
    );
    openssl(
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        'registry.key',
        '-out',
        'registry.csr',
        '-subj',
        '/O=Droplet Mesh/CN=mesh image registry',
      ],
      dir,
    );
    openssl(
      [
        'x509',
        '-req',
        '-in',
        'registry.csr',
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        'registry.crt',
        '-days',
        '397',
        '-extfile',
        'registry.ext',
      ],
      dir,
    );
    rmSync(join(dir, 'registry.csr'), { force: true });
  }
  for (const f of [caKey, keyFile]) chmodSync(f, 0o600);
  return { ca: readFileSync(caFile, 'utf8'), caFile, certFile, keyFile };
}
