// Prints deploy/nats/nats.conf (compose's NATS configuration) from the permission table in udc-kit;
// with `cluster`, deploy/nats/nats-cluster.conf (each node of docker-compose.ha.yml's cluster).
import { renderComposeClusterNatsConfig, renderComposeNatsConfig } from '@droplet-mesh/udc-kit';

process.stdout.write(process.argv[2] === 'cluster' ? renderComposeClusterNatsConfig() : renderComposeNatsConfig());
