import { z } from 'zod';
import { parseOrThrow } from '@droplet-mesh/udc-kit';
import { deployOptions, deployRequest, nameSchema, type DeploymentSource, type SourceInput } from '../domain/model.js';

export function toSource(s: SourceInput): DeploymentSource {
  return 'image' in s
    ? { kind: 'image', image: s.image }
    : { kind: 'git', url: s.git.url, ref: s.git.ref, ...(s.git.path ? { path: s.git.path } : {}) };
}

const formBool = z.enum(['true', 'false']).transform((v) => v === 'true');
/** Text fields of a multipart (tarball) deploy. */
export const multipartFields = z.object({
  project: nameSchema,
  service: nameSchema,
  environment: nameSchema,
  queue: formBool.default(true),
  auto_rollback: formBool.optional(),
});

export const jsonDeploy = z.union([deployRequest, z.object({ config: nameSchema, queue: deployOptions.queue })]);

export function parseJsonDeploy(body: unknown) {
  return parseOrThrow(jsonDeploy, body ?? {}, 'body');
}
