import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A throwaway CA made with the openssl CLI, issuing leaf certificates with chosen names and dates. */
export interface TestCa {
  /** The root, to verify TLS answers against. */
  rootPem: string;
  /** An intermediate signed by the root; leaves are signed by it (so chains have two certificates). */
  intermediatePem: string;
  issue(opts: { names: string[]; start?: string; end?: string }): { certPem: string; chainPem: string; keyPem: string };
  /** A fresh key that matches nothing. */
  otherKey(): string;
  close(): void;
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

// `openssl ca` rather than `x509 -req`: it takes explicit start and end dates, so an expired
// certificate is made without faking the clock.
const CA_CONF = `[ ca ]
default_ca = ca_default
[ ca_default ]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = policy_any
copy_extensions = copy
unique_subject = no
email_in_dn = no
[ policy_any ]
commonName = supplied
[ leaf ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
[ intermediate ]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
`;

export function createTestCa(): TestCa {
  const dir = mkdtempSync(join(tmpdir(), 'mesh-test-ca-'));
  writeFileSync(join(dir, 'ca.conf'), CA_CONF);
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'root.key', '-out', 'root.pem', '-subj', '/CN=Mesh Test Root', '-days', '30'], dir);
  openssl(['req', ...ec, '-keyout', 'int.key', '-out', 'int.csr', '-subj', '/CN=Mesh Test Intermediate'], dir);
  openssl(
    [
      'ca',
      '-batch',
      '-config',
      'ca.conf',
      '-extensions',
      'intermediate',
      '-cert',
      'root.pem',
      '-keyfile',
      'root.key',
      '-in',
      'int.csr',
      '-out',
      'int.pem',
      '-days',
      '30',
    ],
    dir,
  );
  openssl(['x509', '-in', 'int.pem', '-out', 'int.pem'], dir); // PEM only, no text dump
  const intermediatePem = readFileSync(join(dir, 'int.pem'), 'utf8');
  let n = 0;
  return {
    rootPem: readFileSync(join(dir, 'root.pem'), 'utf8'),
    intermediatePem,
    issue({ names, start, end }) {
      const i = n++;
      openssl(
        [
          'req',
          ...ec,
          '-keyout',
          `leaf${i}.key`,
          '-out',
          `leaf${i}.csr`,
          '-subj',
          `/CN=${names[0]}`,
          '-addext',
          `subjectAltName=${names.map((x) => `DNS:${x}`).join(',')}`,
        ],
        dir,
      );
      const dates = [...(start ? ['-startdate', start] : []), ...(end ? ['-enddate', end] : ['-days', '20'])];
      openssl(
        [
          'ca',
          '-batch',
          '-config',
          'ca.conf',
          '-extensions',
          'leaf',
          '-cert',
          'int.pem',
          '-keyfile',
          'int.key',
          '-in',
          `leaf${i}.csr`,
          '-out',
          `leaf${i}.pem`,
          '-notext',
          ...dates,
        ],
        dir,
      );
      const certPem = readFileSync(join(dir, `leaf${i}.pem`), 'utf8');
      return { certPem, chainPem: certPem + intermediatePem, keyPem: readFileSync(join(dir, `leaf${i}.key`), 'utf8') };
    },
    otherKey() {
      return execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']).toString();
    },
    close: () => rmSync(dir, { recursive: true, force: true }),
  };
}
