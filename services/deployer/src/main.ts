import { configOrExit } from '@droplet-mesh/udc-kit';
import { createDeployerDroplet } from './app.js';
import { deployerConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects; udc-kit registers with the
// registry itself when REGISTRY_KEY is set.
configOrExit(deployerConfigSchema);
const droplet = await createDeployerDroplet({ env: process.env });
droplet.installSignalHandlers();
await droplet.start();
