import { X509Certificate } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { normalizeHostname } from '../domain/route-spec.js';

export interface CertInfo {
  domain: string;
  issuer: string;
  subject: string;
  not_before: string;
  not_after: string;
  serial: string;
}
export interface CertPaths {
  dir: string;
  certificate: string;
  key: string;
}

/** Certificates under DATA_DIR/certs/<domain>/: fullchain.pem, and privkey.pem with mode 0600. */
export class CertStore {
  constructor(readonly dir: string) {}

  paths(domain: string): CertPaths {
    const d = join(this.dir, domain);
    return { dir: d, certificate: join(d, 'fullchain.pem'), key: join(d, 'privkey.pem') };
  }

  async read(domain: string): Promise<CertInfo | undefined> {
    try {
      const pem = await readFile(this.paths(domain).certificate, 'utf8');
      await readFile(this.paths(domain).key);
      const c = new X509Certificate(pem);
      return {
        domain,
        issuer: c.issuer,
        subject: c.subject,
        not_before: new Date(c.validFrom).toISOString(),
        not_after: new Date(c.validTo).toISOString(),
        serial: c.serialNumber,
      };
    } catch {
      return undefined;
    }
  }

  /** The files themselves, for sharing with other replicas. */
  async readPem(domain: string): Promise<{ keyPem: Buffer; chainPem: string } | undefined> {
    try {
      const p = this.paths(domain);
      return { keyPem: await readFile(p.key), chainPem: await readFile(p.certificate, 'utf8') };
    } catch {
      return undefined;
    }
  }

  async save(domain: string, keyPem: string | Buffer, chainPem: string | Buffer): Promise<void> {
    const p = this.paths(domain);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await mkdir(p.dir, { recursive: true, mode: 0o700 });
    await chmod(p.dir, 0o700);
    await writeAtomic(p.key, keyPem, 0o600);
    await writeAtomic(p.certificate, chainPem, 0o644);
  }

  async list(): Promise<CertInfo[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const out = await Promise.all(names.filter((n) => normalizeHostname(n) === n).map((n) => this.read(n)));
    return out.filter((x): x is CertInfo => !!x);
  }
}

async function writeAtomic(path: string, data: string | Buffer, mode: number): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode); // umask cannot loosen it, and an existing tmp keeps no old mode
  await rename(tmp, path);
}
