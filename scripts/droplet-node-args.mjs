// The arguments `node` gets before a droplet's dist/main.js wherever users run it: `npm start`
// (scripts/start-mesh.mjs), the images (CMD of deploy/droplet.Dockerfile and
// deploy/proxy-manager.Dockerfile, which must spell the list out: a Dockerfile cannot import
// it; bench/footprint refuses to run when they disagree) and bench/footprint (issue 16).
//
// --max-semi-space-size=1 (MB): V8's young generation grows up to 2 × 16 MB while a droplet
// starts (module loading and config parsing allocate a lot of short-lived objects) and keeps
// that size until V8's memory reducer shrinks it, ~8 s after the process goes idle. Capped at
// 1 MB per semi-space the droplet idles ~15–20 MB lower from its first second; the cost is
// more frequent scavenges (measured with bench:udc, see bench/README.md).
export const DROPLET_NODE_ARGS = Object.freeze(['--max-semi-space-size=1']);
