// How a deploy image reaches every server of a deploy. With a mesh registry: the building
// server pushes it once, every other server pulls the exact digest (repo@sha256:…), layers
// it already holds are not sent again, and a rollback can pull a digest no server keeps any
// more. Without one: `docker save` from the building server, `docker load` into each other
// (the whole image every time, one server after another, through the deployer).
import type { ContainerEngine } from '../engine/container-engine.js';
import { isDigestRef, repositoryOf } from './image-ref.js';
import { inMeshRegistry, type MeshRegistry } from './mesh-registry.js';

export interface TransportTarget {
  serverId: string;
  engine: ContainerEngine;
}

export interface TransportInput {
  /** The deploy's tag (repository:tag), present on the builder; with a registry, a repository of it. */
  tag: string;
  builder: TransportTarget;
  others: TransportTarget[];
  registry?: MeshRegistry;
  /** The mesh registry already holds this image at this digest reference (a rollback, a promotion). */
  knownDigest?: string;
  log: (line: string) => void;
  signal: AbortSignal;
}

export interface TransportResult {
  /** registry/repo@sha256:… when the image went through the mesh registry. */
  digestRef?: string;
  via: 'registry' | 'export-import' | 'none';
}

function registryError(what: string, host: string, err: unknown): Error {
  return new Error(`${what} the mesh registry ${host} failed: ${(err as Error).message}`);
}

/** Push once (unless the registry has it), then every other server pulls the digest and tags it as the deploy's tag. */
export async function distributeImage(t: TransportInput): Promise<TransportResult> {
  if (!t.registry) {
    if (t.others.length === 0) return { via: 'none' };
    for (const o of t.others) {
      if (await o.engine.imageInfo(t.tag)) continue;
      t.log(`copying ${t.tag} to server ${o.serverId} (export/import: no MESH_REGISTRY)`);
      await o.engine.importImage(await t.builder.engine.exportImage(t.tag));
    }
    return { via: 'export-import' };
  }
  const registry = t.registry;
  let digestRef = t.knownDigest && isDigestRef(t.knownDigest) && inMeshRegistry(registry, t.knownDigest) ? t.knownDigest : undefined;
  if (!digestRef) {
    if (!inMeshRegistry(registry, t.tag)) throw new Error(`${t.tag} is not a repository of the mesh registry ${registry.host}`);
    const digest = await t.builder.engine
      .push(t.tag, registry.auth, () => undefined, t.signal)
      .catch((err) => {
        throw registryError('push to', registry.host, err);
      });
    digestRef = `${repositoryOf(t.tag)}@${digest}`;
    t.log(`pushed ${t.tag} to the mesh registry: ${digestRef}`);
  }
  const ref = digestRef;
  await Promise.all(
    t.others.map(async (o) => {
      t.log(`server ${o.serverId} pulls ${ref}`);
      await o.engine
        .pull(ref, () => undefined, t.signal, registry.auth)
        .catch((err) => {
          throw registryError(`server ${o.serverId}: pull from`, registry.host, err);
        });
      // Tagged in the digest's own repository: removing the tag later (retention) removes the image too.
      await o.engine.tag(ref, t.tag);
    }),
  );
  return { digestRef: ref, via: 'registry' };
}
