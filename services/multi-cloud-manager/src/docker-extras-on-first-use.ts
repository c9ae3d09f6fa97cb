// Issue 16 (idle RSS): dockerode loads at start two transports a droplet uses only when asked
// for them: docker-modem's SSH transport (ssh2, for DOCKER_HOST=ssh://…) and dockerode's
// BuildKit session (@grpc/grpc-js, @grpc/proto-loader, protobufjs, for buildImage with
// version '2'). Each is one module exporting one function, called only then. Imported first by
// main.ts, before dockerode, this puts in node's module cache for each a function that loads
// the real module on its first call and passes the call on: ~6 MB less RSS at idle. Should
// dockerode's layout change (a file gone), nothing is put in the cache and it loads as before.
// (The same file is in the deployer; container-policy would be the shared place.)
import Module, { createRequire } from 'node:module';

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

try {
  const fromDockerode = createRequire(createRequire(import.meta.url).resolve('dockerode'));
  loadOnFirstCall(fromDockerode, './session');
  loadOnFirstCall(createRequire(fromDockerode.resolve('docker-modem')), './ssh');
} catch {
  // dockerode not where expected: it loads everything itself, as without this module.
}
