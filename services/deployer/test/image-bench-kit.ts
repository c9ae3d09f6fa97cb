// What bench/images needs from this package's dependencies (it lives outside the package,
// so it cannot resolve them itself).
export {
  buildImageFromDir,
  copyImages,
  ensureDockerEngine,
  ensureNodeBaseImage,
  startNamespacedEngine,
  startTestImageRegistry,
  trustTestRegistry,
} from '@droplet-mesh/docker-testing';
