import type { DeployerConfig } from '../config.js';
import type { Stores } from '../store/stores.js';
import { registryHostOf } from './image-ref.js';
import { meshRegistryOf, type RegistryAuth } from './mesh-registry.js';
import { RegistryCredentials } from './registry-credentials.js';

/** The authconfig a pull of `ref` needs: the mesh registry's own, else the credentials stored for its host. */
export function pullAuthResolver(config: DeployerConfig, stores: Stores): (ref: string) => Promise<RegistryAuth | undefined> {
  const mesh = meshRegistryOf(config);
  const stored = new RegistryCredentials(stores.registryCredentials, config.DEPLOYER_MASTER_KEY);
  return async (ref) => {
    const host = registryHostOf(ref);
    if (mesh && host === mesh.host) return mesh.auth;
    return stored.authFor(host);
  };
}
