import { ConfigError } from '@droplet-mesh/udc-kit';
import { createRegistryDroplet } from './app.js';

try {
  const { droplet } = await createRegistryDroplet({ env: process.env });
  droplet.installSignalHandlers();
  await droplet.start();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`invalid configuration: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}
