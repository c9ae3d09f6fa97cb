export { ensureDockerEngine } from './docker-engine.js';
export { buildImageFromDir, ensureBusyboxImage, ensureNodeBaseImage } from './local-images.js';
