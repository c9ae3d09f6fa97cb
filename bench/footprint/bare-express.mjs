// The baseline of bench/footprint: a bare Express 5 app with one /health route, started the
// same way as a droplet (`node <file>`, PORT and HOST from the environment).
import express from 'express';

const app = express();
app.get('/health', (_req, res) => {
  res.json({ status: 'active' });
});
const server = app.listen(Number(process.env.PORT ?? 0), process.env.HOST ?? '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
