export { DOCKER_CERTS_DIR, trustRegistryCa } from './certs-d.js';
export { htpasswdLine, htpasswdMatches } from './htpasswd.js';
export { renderRegistryConfig, type RegistryConfigInput } from './registry-config.js';
export {
  type ImageRegistry,
  type ImageRegistryOptions,
  type PreparedRegistry,
  prepareImageRegistry,
  probeRegistry,
  REGISTRY_BIN,
  startImageRegistry,
} from './registry-process.js';
export { ensureRegistryTls, type RegistryTls } from './tls-material.js';
