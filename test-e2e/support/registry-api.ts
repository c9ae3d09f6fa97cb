export const ADMIN_KEY = 'e2e-admin-key-0123456789abcdef';

export async function operatorToken(registryUrl: string): Promise<string> {
  const r = await fetch(`${registryUrl}/auth/token?droplet_id=operator`, { method: 'POST', headers: { 'x-registry-key': ADMIN_KEY } });
  if (!r.ok) throw new Error(`token: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { token: string }).token;
}

export async function getJson<T = any>(url: string, token: string): Promise<{ status: number; body: T }> {
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  return { status: r.status, body: (await r.json()) as T };
}

export async function postJson<T = any>(url: string, token: string, body: unknown): Promise<{ status: number; body: T }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as T };
}
