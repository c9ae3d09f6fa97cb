import type { DeployerConfig } from '../config.js';
import type { Stores } from '../store/stores.js';
import { registryHostOf } from './image-ref.js';
import { meshRegistryOf, type RegistryAuth } from './mesh-registry.js';
import { projectsHoldCredentialsFor, RegistryCredentials } from './registry-credentials.js';

export interface PullAccess {
  /** The authconfig a pull of a ref needs: the mesh registry's own, else `project`'s credentials for its host, else the mesh-wide ones. */
  authFor(ref: string): Promise<RegistryAuth | undefined>;
  /**
   * Whether a copy already on the server may be used without pulling: not when some project holds
   * credentials for its registry (a private image one project pulled must not reach another that
   * may not pull it; the pull is the registry's answer).
   */
  mustPull(ref: string): Promise<boolean>;
  /** What to do when the registry refuses a pull without credentials. */
  missingHint(host: string): string;
}

export function pullAccess(config: DeployerConfig, stores: Stores, project: string): PullAccess {
  const mesh = meshRegistryOf(config);
  const own = new RegistryCredentials(stores.projectRegistryCredentials, config.DEPLOYER_MASTER_KEY, project);
  const meshWide = new RegistryCredentials(stores.registryCredentials, config.DEPLOYER_MASTER_KEY);
  return {
    async authFor(ref) {
      const host = registryHostOf(ref);
      if (mesh && host === mesh.host) return mesh.auth;
      return (await own.authFor(host)) ?? (await meshWide.authFor(host));
    },
    async mustPull(ref) {
      const host = registryHostOf(ref);
      if (mesh && host === mesh.host) return false;
      return projectsHoldCredentialsFor(stores.projectRegistryCredentials, host);
    },
    missingHint: (host) =>
      `no credentials are stored for ${host} in project ${project}: PUT /projects/${project}/registries/${host} (or mesh-wide: PUT /registries/${host})`,
  };
}
