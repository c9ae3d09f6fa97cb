import { configOrExit } from '@droplet-mesh/udc-kit';
import { createRegistryDroplet } from './app.js';
import { registryConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects.
configOrExit(registryConfigSchema);
const { droplet } = await createRegistryDroplet({ env: process.env });
droplet.installSignalHandlers();
await droplet.start();
