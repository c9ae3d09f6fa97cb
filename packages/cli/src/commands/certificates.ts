import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { CliError } from '../errors.js';
import type { Column } from '../table.js';
import type { CommandEnv } from './command-env.js';

const DROPLET = 'proxy-manager';

/** One row per route serving HTTPS (its ACME certificate, or the upload covering it), and one per upload. */
interface CertificateRow {
  source: 'route' | 'upload';
  id: string;
  names: string[];
  not_after: string | null;
  days_left: number | null;
}

interface Route {
  name: string;
  domain: string;
  certificate: { not_after: string; days_left: number } | null;
}

interface Uploaded {
  id: string;
  names: string[];
  not_after: string;
}

const DAY_MS = 86_400_000;

const columns: Column<CertificateRow>[] = [
  { header: 'SOURCE', value: (c) => c.source },
  { header: 'ID', value: (c) => c.id },
  { header: 'NAMES', value: (c) => c.names.join(',') },
  { header: 'EXPIRES', value: (c) => (c.not_after ? `${c.not_after.slice(0, 10)} (${c.days_left}d)` : null) },
];

async function readPem(file: string, what: string): Promise<string> {
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new CliError('INVALID_REQUEST', `cannot read the ${what} file ${file} (${err.code ?? 'error'})`);
  });
}

export function registerCertificateCommands(program: Command, { context }: CommandEnv): void {
  const certs = program
    .command('certificates')
    .alias('certs')
    .description("The proxy's TLS certificates: ACME-issued per route, and uploaded");

  certs
    .command('ls', { isDefault: true })
    .description('Every certificate with the names it covers and when it expires')
    .option('--url <url>', 'proxy-manager URL (env MESHCTL_PROXY_MANAGER_URL)')
    .action(async (o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const pm = await ctx.droplet(DROPLET, o.url);
      const routes = (await pm.all<Route>('/proxies')).items;
      const uploads = (await pm.all<Uploaded>('/certificates')).items;
      const items: CertificateRow[] = [
        ...routes
          .filter((r) => r.certificate)
          .map((r) => ({
            source: 'route' as const,
            id: r.name,
            names: [r.domain],
            not_after: r.certificate?.not_after ?? null,
            days_left: r.certificate?.days_left ?? null,
          })),
        ...uploads.map((u) => ({
          source: 'upload' as const,
          id: u.id,
          names: u.names,
          not_after: u.not_after,
          days_left: Math.floor((Date.parse(u.not_after) - Date.now()) / DAY_MS),
        })),
      ];
      ctx.out.result({ items }, () => ctx.out.table(columns, items));
    });

  certs
    .command('issue <route>')
    .description("Obtain (or with --renew, renew) the route's certificate over ACME HTTP-01 and switch it to HTTPS")
    .option('--email <email>', 'ACME account contact')
    .option('--renew', 'renew even when the current certificate is far from expiry')
    .option('--url <url>', 'proxy-manager URL')
    .action(async (route: string, o: { email?: string; renew?: boolean; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const pm = await ctx.droplet(DROPLET, o.url);
      if (!ctx.out.json) ctx.out.note(`asking the ACME CA for ${route}'s certificate...`);
      const r = await pm.post<Route>(`/proxies/${encodeURIComponent(route)}/ssl`, {
        ...(o.email ? { email: o.email } : {}),
        force_renew: !!o.renew,
      });
      ctx.out.result(r, () =>
        ctx.out.line(`${r.name} (${r.domain}) serves HTTPS${r.certificate ? ` until ${r.certificate.not_after.slice(0, 10)}` : ''}`),
      );
    });

  certs
    .command('upload')
    .description('Upload your own certificate (PEM chain, leaf first, and its key; wildcards too); stored sealed')
    .requiredOption('--cert <file>', 'PEM certificate chain')
    .requiredOption('--key <file>', 'PEM private key (unencrypted)')
    .option('--url <url>', 'proxy-manager URL')
    .action(async (o: { cert: string; key: string; url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      const pm = await ctx.droplet(DROPLET, o.url);
      const body = { certificate: await readPem(o.cert, 'certificate'), key: await readPem(o.key, 'key') };
      const r = await pm.post<{ certificate: Uploaded; routes: string[] }>('/certificates', body);
      const c = r.certificate;
      ctx.out.result(r, () =>
        ctx.out.line(
          `certificate ${c.id} for ${c.names.join(', ')} until ${c.not_after.slice(0, 10)}${r.routes.length ? `; serves ${r.routes.join(', ')}` : ''}`,
        ),
      );
    });

  certs
    .command('rm <id>')
    .description('Delete an uploaded certificate; routes it served fall back to ACME')
    .option('--url <url>', 'proxy-manager URL')
    .action(async (id: string, o: { url?: string }, cmd: Command) => {
      const ctx = context(cmd);
      await (await ctx.droplet(DROPLET, o.url)).delete(`/certificates/${encodeURIComponent(id)}`);
      ctx.out.result({ deleted: id }, () => ctx.out.line(`certificate ${id} deleted`));
    });
}
