// The first import of main.ts, before anything loads dockerode (issue 16, idle RSS): its SSH
// transport and BuildKit session then load on first use.
import { loadDockerExtrasOnFirstUse } from '@droplet-mesh/container-policy';

loadDockerExtrasOnFirstUse(import.meta.url);
