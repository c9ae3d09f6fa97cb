import { z } from 'zod';
import { parseOrThrow } from '@droplet-mesh/udc-kit';
import { gitSourceView, sealGitSource, type PlainGitInput } from '../domain/git-credentials.js';
import {
  deployOptions,
  deployRequest,
  nameSchema,
  type DeployConfig,
  type DeploymentSource,
  type SourceInput,
  type StoredSourceInput,
} from '../domain/model.js';

/**
 * A request's or a saved config's source as a deployment source. Plain credentials (URL
 * userinfo, deploy_key) pass through to the deployer, which seals them before anything
 * is stored; sealed ones (a saved config) stay sealed.
 */
export function toSource(s: SourceInput | StoredSourceInput): DeploymentSource {
  if ('image' in s) return { kind: 'image', image: s.image };
  const g: PlainGitInput = s.git;
  return {
    kind: 'git',
    url: g.url,
    ref: g.ref,
    ...(g.path ? { path: g.path } : {}),
    ...(g.deploy_key ? { deploy_key: g.deploy_key } : {}),
    ...(g.known_hosts ? { known_hosts: g.known_hosts } : {}),
    ...(g.credentials ? { credentials: g.credentials } : {}),
  };
}

/** A source as it may be saved (a deploy config): credentials sealed, the URL clean. */
export function storedSource(key: Buffer, s: SourceInput): StoredSourceInput {
  return 'image' in s ? { image: s.image } : { git: sealGitSource(key, s.git) };
}

/** A deployment's source as the API shows it: git credentials redacted, nothing sealed. */
export function sourceView(s: DeploymentSource) {
  if (s.kind !== 'git') return s;
  return { kind: s.kind, ...gitSourceView(s) };
}

/** A deploy config as the API shows it. */
export function deployConfigView(c: DeployConfig) {
  return { ...c, source: 'image' in c.source ? c.source : { git: gitSourceView(c.source.git) } };
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
