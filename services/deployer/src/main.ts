// First: dockerode's SSH transport and BuildKit session then load on first use (issue 16, idle RSS).
import './docker-extras-on-first-use.js';
import { configOrExit, environmentWithFile } from '@droplet-mesh/udc-kit';
import { createDeployerDroplet } from './app.js';
import { deployerConfigSchema } from './config.js';

// One clear line per bad variable, before anything connects; udc-kit registers with the
// registry itself when REGISTRY_KEY is set.
// The env file (ENV_FILE, default <DATA_DIR>/deployer.env) over the environment, as /reload-config reads it.
const env = environmentWithFile('deployer', process.env);
configOrExit(deployerConfigSchema, env);
const droplet = await createDeployerDroplet({ env });
droplet.installSignalHandlers();
await droplet.start();
