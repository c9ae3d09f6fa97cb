import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContainerEngine, ImageInfo } from '../engine/container-engine.js';
import { detectProjectKind, nodeDockerfile, pythonDockerfile, type ProjectFiles } from '../domain/dockerfile-gen.js';
import { redactGitUrl, type GitAuth } from '../domain/git-credentials.js';
import type { DeploymentSource } from '../domain/model.js';
import { MANAGED_LABEL } from '../domain/naming.js';
import { registryHostOf } from '../registry/image-ref.js';
import type { RegistryAuth } from '../registry/mesh-registry.js';

const SOURCE_LABEL = 'mesh.source-image';
import { cloneRepository, gitErrorMessage } from '../source/git.js';
import { extractTarball } from '../source/tarball.js';

export interface BuildInput {
  engine: ContainerEngine;
  source: DeploymentSource;
  /** Opened git credentials, for a private repository. */
  gitAuth?: GitAuth;
  /** The uploaded archive, for `upload` sources. */
  uploadPath?: string;
  tag: string;
  labels: Record<string, string>;
  baseImages: { node: string; python: string };
  uploadLimits: { maxBytes: number; maxEntries: number };
  log: (line: string) => void;
  signal: AbortSignal;
  /** The authconfig for pulling an image (private registries, the mesh registry), if any. */
  pullAuth?: (ref: string) => Promise<RegistryAuth | undefined>;
  /** True when a copy already on the server may not be used without a pull (a private registry's image). */
  mustPull?: (ref: string) => Promise<boolean>;
  /** What a refused pull without credentials tells the user to do. */
  missingAuthHint?: (host: string) => string;
}

/** Pull `ref` with its registry's credentials; a failure names the registry and says when none are stored. */
async function pullNamed(b: BuildInput, ref: string): Promise<void> {
  const host = registryHostOf(ref);
  const auth = await b.pullAuth?.(ref);
  try {
    await b.engine.pull(ref, b.log, b.signal, auth);
  } catch (err) {
    const hint = auth ? '' : ` (${b.missingAuthHint?.(host) ?? `no credentials are stored for ${host}: PUT /registries/${host}`})`;
    throw new Error(`pulling ${ref} from registry ${host} failed: ${(err as Error).message.trim()}${hint}`);
  }
}

function filesOf(dir: string): ProjectFiles {
  return {
    has: (f) => existsSync(join(dir, f)),
    read: (f) => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : undefined),
  };
}

/** Write a Dockerfile when the project has none; returns the build args it needs. */
export function prepareBuildContext(
  dir: string,
  baseImages: { node: string; python: string },
  log: (l: string) => void,
): Record<string, string> {
  const files = filesOf(dir);
  const kind = detectProjectKind(files);
  if (kind === 'dockerfile') return {};
  if (kind === 'node') {
    writeFileSync(join(dir, 'Dockerfile'), nodeDockerfile(files, 'node:20-slim'));
    log(`no Dockerfile: generated one for a Node project (base ${baseImages.node})`);
    return { BASE_IMAGE: baseImages.node };
  }
  if (kind === 'python') {
    writeFileSync(join(dir, 'Dockerfile'), pythonDockerfile(files, 'python:3.12-slim'));
    log(`no Dockerfile: generated one for a Python project (base ${baseImages.python})`);
    return { BASE_IMAGE: baseImages.python };
  }
  throw new Error('the source has no Dockerfile and is neither a Node (package.json) nor a Python project');
}

/** An archive holding one top-level directory is read from inside it. */
function projectRoot(dir: string): string {
  const entries = readdirSync(dir);
  if (entries.length === 1 && statSync(join(dir, entries[0])).isDirectory() && detectProjectKind(filesOf(dir)) === 'unknown')
    return join(dir, entries[0]);
  return dir;
}

/**
 * Resolve or build the deploy image and tag it `tag`. An `{image}` that is already a
 * deployer image (a rollback or promotion) is only re-tagged; any other image is used
 * from the local engine when present, pulled only when absent, and wrapped in a
 * one-line build so it carries the mesh labels.
 */
export async function produceImage(b: BuildInput): Promise<ImageInfo & { commit?: string }> {
  const work = mkdtempSync(join(tmpdir(), 'mesh-deploy-'));
  try {
    let commit: string | undefined;
    if (b.source.kind === 'image') {
      let info = await b.engine.imageInfo(b.source.image);
      // A private registry's image another project pulled here: this deploy must show it may pull it too.
      const recheck = !!info && !!(await b.mustPull?.(b.source.image));
      if (!info || recheck) {
        b.log(
          recheck
            ? `image ${b.source.image} is from a private registry: pulling it with this project's access`
            : `image ${b.source.image} is not on the server: pulling`,
        );
        await pullNamed(b, b.source.image);
        info = await b.engine.imageInfo(b.source.image);
        if (!info) throw new Error(`image ${b.source.image} is not available after pull`);
      } else b.log(`using local image ${b.source.image} (${info.id.slice(7, 19)})`);
      // Same source image deployed before for this service: its labelled wrapper is reused.
      const wrapped =
        info.labels[MANAGED_LABEL] === 'true'
          ? info
          : (
              await b.engine.listManagedImages({
                'mesh.project': b.labels['mesh.project'],
                'mesh.service': b.labels['mesh.service'],
                [SOURCE_LABEL]: info.id.replace(/^sha256:/, ''),
              })
            )[0];
      if (wrapped) {
        await b.engine.tag(wrapped.id, b.tag);
      } else {
        writeFileSync(join(work, 'Dockerfile'), `FROM ${b.source.image}\n`);
        await b.engine.build(work, b.tag, { labels: { ...b.labels, [SOURCE_LABEL]: info.id.replace(/^sha256:/, '') } }, b.log, b.signal);
      }
    } else {
      let dir = join(work, 'src');
      if (b.source.kind === 'git') {
        b.log(`cloning ${redactGitUrl(b.source.url, b.source.credentials?.kind)} at ${b.source.ref}`);
        try {
          commit = await cloneRepository(b.source.url, b.source.ref, dir, b.signal, b.gitAuth);
        } catch (err) {
          throw new Error(`git clone failed: ${gitErrorMessage(err)}`);
        }
        b.log(`checked out ${commit}`);
        if (b.source.path) dir = join(dir, b.source.path);
        if (!existsSync(dir)) throw new Error(`path '${b.source.path}' is not in the repository`);
      } else {
        if (!b.uploadPath || !existsSync(b.uploadPath)) throw new Error('the uploaded archive is gone (was the deployer restarted?)');
        mkdirSync(dir);
        await extractTarball(b.uploadPath, dir, b.uploadLimits);
        dir = projectRoot(dir);
      }
      const buildargs = prepareBuildContext(dir, b.baseImages, b.log);
      await b.engine.build(dir, b.tag, { buildargs, labels: b.labels }, b.log, b.signal);
    }
    const built = await b.engine.imageInfo(b.tag);
    if (!built) throw new Error(`image ${b.tag} missing after build`);
    return { ...built, commit };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
