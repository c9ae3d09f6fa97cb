export { default } from '@droplet-mesh/jest-preset';
