import { z } from 'zod';
import { paginate, paginationQuery, reply, type Api } from '@droplet-mesh/udc-kit';
import type { ProxyService } from '../proxy-service.js';

const idParams = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, 'must be a certificate id (16 hex digits)') });

/** PEM text only: the checks themselves (chain, key match, dates, names) are the domain's. */
export const certificateUploadBody = z.strictObject({
  certificate: z.string().min(1).max(64_000),
  key: z.string().min(1).max(16_000),
});

// Answers describe certificates (names, dates, fingerprint); no answer ever holds a key.
export function registerCertificateRoutes(api: Api, deps: { readonly service: ProxyService }): void {
  api.post(
    '/certificates',
    {
      scope: 'write',
      summary:
        'Upload a certificate: PEM chain (leaf first) and its unencrypted PEM key; wildcards cover one label. Checked (key matches, valid now, chain signed in order), stored sealed, served by every HTTPS route whose domain it covers (201; 200 when the same certificate was there)',
      body: certificateUploadBody,
      status: 201,
    },
    async ({ body, log, correlationId }) => {
      const { created, ...rest } = await deps.service.uploadCertificate(body, { log, correlationId });
      return reply(created ? 201 : 200, rest);
    },
  );

  api.get('/certificates', { summary: 'Uploaded certificates (without keys), paginated', query: paginationQuery }, async ({ query }) =>
    paginate(deps.service.listCertificates(), query),
  );

  api.get('/certificates/:id', { summary: 'One uploaded certificate (without its key)', params: idParams }, ({ params }) =>
    deps.service.getCertificate(params.id),
  );

  api.delete(
    '/certificates/:id',
    {
      scope: 'write',
      summary: 'Delete an uploaded certificate; the routes it served fall back to ACME',
      params: idParams,
    },
    ({ params, log, correlationId }) => deps.service.deleteCertificate(params.id, { log, correlationId }),
  );
}
