// How the mesh starts a container on an engine (an app the deployer runs, an instance of the
// local provider): on the mesh's own bridge network (never the host's), without capabilities
// or privilege escalation, as a non-root user unless the image asks for root.
import { Conflict } from '@droplet-mesh/udc-kit';
import type Docker from 'dockerode';

export const NETWORK_LABEL = 'mesh.network';
const MANAGED = 'mesh.managed';

/** What an image that declares `USER root` keeps (a web server that drops to its own user); everything else is dropped. */
export const ROOT_CAPABILITIES = ['CHOWN', 'SETUID', 'SETGID', 'NET_BIND_SERVICE'];
/** The user of images that declare none. */
export const UNPRIVILEGED_USER = '65534:65534';

/** Calls of ensureMeshNetwork under way, per engine and name: concurrent callers share one. */
const ensuring = new WeakMap<Docker, Map<string, Promise<void>>>();

/**
 * The bridge network `name`, created (labelled as the mesh's) when missing. A network of
 * that name the mesh did not create, or not a bridge, is refused rather than joined;
 * `setting` names the variable that picks another name. Concurrent calls on one engine
 * share one check; duplicates another process created at the same time are removed.
 */
export function ensureMeshNetwork(docker: Docker, name: string, purpose: string, setting: string): Promise<void> {
  let byName = ensuring.get(docker);
  if (!byName) ensuring.set(docker, (byName = new Map()));
  const running = byName.get(name);
  if (running) return running;
  const p = ensureOnce(docker, name, purpose, setting).finally(() => byName.delete(name));
  byName.set(name, p);
  return p;
}

async function ensureOnce(docker: Docker, name: string, purpose: string, setting: string): Promise<void> {
  const ours = (n: { Labels?: Record<string, string>; Driver?: string }) => {
    if (n.Labels?.[MANAGED] !== 'true' || n.Driver !== 'bridge')
      throw new Conflict(`Docker network '${name}' exists but was not created by the mesh; remove it or set ${setting} to another name`, {
        network: name,
      });
  };
  // Listed, not inspected by name: an inspect of a duplicated name fails as "ambiguous".
  const existing = await networksNamed(docker, name);
  existing.forEach(ours);
  if (existing.length === 1) return;
  if (existing.length === 0)
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { [MANAGED]: 'true', [NETWORK_LABEL]: purpose },
      // A published port without an address binds to loopback, not to every interface.
      Options: { 'com.docker.network.bridge.host_binding_ipv4': '127.0.0.1' },
    });
  // Created here (another process may have created it too), or already duplicated.
  await keepOne(docker, name, ours);
}

const networksNamed = async (docker: Docker, name: string) =>
  (await docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);

/**
 * dockerd (20.10) checks for a duplicate name before it creates, not atomically: two
 * processes creating the network at once both succeed, and every container start naming it
 * then fails as ambiguous. The oldest is kept (one with containers first); the others go.
 */
async function keepOne(docker: Docker, name: string, ours: (n: Docker.NetworkInspectInfo) => void): Promise<void> {
  const listed = await networksNamed(docker, name);
  if (listed.length <= 1) return;
  listed.forEach(ours);
  // A listing leaves out the attached containers: each is inspected by id.
  const all = await Promise.all(listed.map((n) => docker.getNetwork(n.Id).inspect() as Promise<Docker.NetworkInspectInfo>));
  const inUse = (n: Docker.NetworkInspectInfo) => Object.keys(n.Containers ?? {}).length > 0;
  const [, ...extra] = all.sort(
    (a, b) => Number(inUse(b)) - Number(inUse(a)) || a.Created.localeCompare(b.Created) || a.Id.localeCompare(b.Id),
  );
  for (const n of extra)
    await docker
      .getNetwork(n.Id)
      .remove()
      .catch((err) => {
        // Already removed by the process that created it at the same time.
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      });
}

const isRoot = (user: string) => {
  const u = user.split(':')[0];
  return u === '0' || u === 'root';
};

/** User and capabilities for an image: its own non-root user; nobody when it names none; root (minimal capabilities) only when it says so. */
export function runAs(image: Docker.ImageInspectInfo): { user?: string; capAdd: string[] } {
  const user = image.Config?.User?.trim() ?? '';
  if (!user) return { user: UNPRIVILEGED_USER, capAdd: [] };
  if (isRoot(user)) return { capAdd: ROOT_CAPABILITIES };
  return { capAdd: [] };
}

/** The user and HostConfig fields every mesh container gets on `network`. */
export function confinement(network: string, image: Docker.ImageInspectInfo) {
  const { user, capAdd } = runAs(image);
  return {
    user,
    host: {
      NetworkMode: network,
      CapDrop: ['ALL'],
      CapAdd: capAdd,
      SecurityOpt: ['no-new-privileges:true'],
    },
  };
}

export { loadDockerExtrasOnFirstUse } from './docker-extras.js';
