// Issue 16 (idle RSS): dockerode loads at start two transports a droplet uses only when asked
// for them: docker-modem's SSH transport (ssh2, for DOCKER_HOST=ssh://…) and dockerode's
// BuildKit session (@grpc/grpc-js, @grpc/proto-loader, protobufjs, for buildImage with
// version '2'). Each is one module exporting one function, called only then: ~6 MB of RSS.
import Module, { createRequire } from 'node:module';

/** Put in node's module cache, for the module at `request` (from `from`), a function that loads the real one on its first call. */
function loadOnFirstCall(from: NodeJS.Require, request: string): void {
  let path: string;
  try {
    path = from.resolve(request);
  } catch {
    return;
  }
  if (from.cache[path]) return;
  let real: ((...args: unknown[]) => unknown) | undefined;
  const entry = new Module(path);
  entry.filename = path;
  entry.loaded = true;
  entry.exports = function (this: unknown, ...args: unknown[]): unknown {
    if (!real) {
      delete from.cache[path];
      real = from(path) as (...args: unknown[]) => unknown;
    }
    return real.apply(this, args);
  };
  from.cache[path] = entry;
}

/**
 * Makes dockerode (as the module at `importer`, an import.meta.url, resolves it) load its SSH
 * transport and BuildKit session on their first use. To be called before anything loads
 * dockerode: from the first import of a droplet's main.ts. Should dockerode's layout change
 * (a file gone), nothing is put in the cache and it loads everything itself, as before.
 */
export function loadDockerExtrasOnFirstUse(importer: string): void {
  try {
    const fromDockerode = createRequire(createRequire(importer).resolve('dockerode'));
    loadOnFirstCall(fromDockerode, './session');
    loadOnFirstCall(createRequire(fromDockerode.resolve('docker-modem')), './ssh');
  } catch {
    // dockerode not where expected: it loads everything itself.
  }
}
