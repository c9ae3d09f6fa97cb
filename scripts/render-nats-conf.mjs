// Prints deploy/nats/nats.conf (compose's NATS configuration) from the permission table in udc-kit.
import { renderComposeNatsConfig } from '@droplet-mesh/udc-kit';

process.stdout.write(renderComposeNatsConfig());
