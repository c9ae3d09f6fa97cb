/** One nats-server of a JetStream cluster on this machine (npm start's NATS_CLUSTER, and tests). */
export interface ClusterNode {
  name: string;
  port: number;
  clusterPort: number;
}

/**
 * The configuration of `node` in a cluster of `nodes`: a server name, routes to the others
 * (authenticated with `routePassword`), and the client `authorization` block every node shares.
 * The client port, address and store directory are given on the command line.
 */
export function renderClusterNodeConfig(node: ClusterNode, nodes: ClusterNode[], routePassword: string, authorization = ''): string {
  const routes = nodes
    .filter((n) => n.name !== node.name)
    .map((n) => JSON.stringify(`nats-route://route:${routePassword}@127.0.0.1:${n.clusterPort}`));
  return `server_name: ${JSON.stringify(node.name)}
cluster {
  name: "mesh"
  listen: "127.0.0.1:${node.clusterPort}"
  authorization { user: "route", password: ${JSON.stringify(routePassword)} }
  routes: [${routes.join(', ')}]
}
${authorization}`;
}
