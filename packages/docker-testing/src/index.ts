export { ensureDockerEngine } from './docker-engine.js';
export { buildImageFromDir, buildWebImage, ensureBusyboxImage, ensureNodeBaseImage, HTTPD } from './local-images.js';
export {
  copyImages,
  type EngineTls,
  namespacedEngineUnavailable,
  type NamespacedEngine,
  type NamespacedEngineOptions,
  startNamespacedEngine,
} from './netns-engine.js';
export { execIn, probeFrom } from './docker-exec.js';
export { probeRegistry, startTestImageRegistry, type TestImageRegistry, trustTestRegistry } from './image-registry.js';
