import { ConfigError } from '@droplet-mesh/udc-kit';
import { createDeployerDroplet } from './app.js';

// udc-kit registers with the registry itself when REGISTRY_KEY is set.
try {
  const droplet = await createDeployerDroplet({ env: process.env });
  droplet.installSignalHandlers();
  await droplet.start();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`invalid configuration: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
