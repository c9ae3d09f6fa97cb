import { configOrExit } from '@droplet-mesh/udc-kit';
import { createOrchestratorDroplet } from './app.js';
import { orchestratorConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects.
configOrExit(orchestratorConfigSchema);
const { droplet } = await createOrchestratorDroplet({ env: process.env });
droplet.installSignalHandlers();
await droplet.start();
