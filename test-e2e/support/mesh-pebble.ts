export { startPebble, type Pebble } from '@droplet-mesh/udc-kit/testing';
