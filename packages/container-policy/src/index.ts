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

/**
 * The bridge network `name`, created (labelled as the mesh's) when missing. A network of
 * that name the mesh did not create, or not a bridge, is refused rather than joined;
 * `setting` names the variable that picks another name.
 */
export async function ensureMeshNetwork(docker: Docker, name: string, purpose: string, setting: string): Promise<void> {
  const check = (n: Docker.NetworkInspectInfo) => {
    if (n.Labels?.[MANAGED] !== 'true' || n.Driver !== 'bridge')
      throw new Conflict(`Docker network '${name}' exists but was not created by the mesh; remove it or set ${setting} to another name`, {
        network: name,
      });
  };
  try {
    check(await docker.getNetwork(name).inspect());
    return;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode !== 404) throw err;
  }
  try {
    await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { [MANAGED]: 'true', [NETWORK_LABEL]: purpose },
      // A published port without an address binds to loopback, not to every interface.
      Options: { 'com.docker.network.bridge.host_binding_ipv4': '127.0.0.1' },
    });
  } catch (err) {
    // Created meanwhile by a concurrent call: take it if it is ours.
    if ((err as { statusCode?: number }).statusCode !== 409) throw err;
    check(await docker.getNetwork(name).inspect());
  }
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
