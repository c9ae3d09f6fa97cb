import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import type { ResolvedServer } from '../domain/render.js';

/**
 * Reload-free upstream membership, the way ingress-nginx switches endpoints: every
 * round-robin location proxies to one shared `upstream mesh_balancer` whose Lua balancer reads
 * the members named by the location's `$mesh_upstream` from
 * a shared dict, and the droplet rewrites that dict through a control location on a unix
 * socket (secret-protected) inside the prefix. A change of members is then one small request:
 * no reload, so no worker is replaced and no keep-alive connection is closed. Structural
 * changes (a new domain, a certificate, settings) still reload behind `nginx -t`.
 *
 * The members are also written to a snapshot file that the master loads at every start and
 * reload (`init_by_lua`), so a restarted or reloaded nginx serves the same members at once.
 */
export const LUA_MODULE_FILES = ['ndk_http_module.so', 'ngx_http_lua_module.so'] as const;
/** lua-resty-core, which Debian's lua module needs (and whose ngx.balancer the balancer uses). */
export const RESTY_CORE = '/usr/share/lua/5.1/resty/core.lua';

/** Why the Lua balancer cannot be used here, or undefined when it can (files only; `nginx -t` decides the rest). */
export function luaMissing(modulesDir: string): string | undefined {
  for (const f of LUA_MODULE_FILES) if (!existsSync(join(modulesDir, f))) return `${join(modulesDir, f)} not found (libnginx-mod-http-lua)`;
  if (!existsSync(RESTY_CORE)) return `${RESTY_CORE} not found (lua-resty-core)`;
  return undefined;
}

/** Members as one line per upstream: `name<TAB>addr|port|weight,...`; an empty list removes the upstream. */
export function membershipLine(name: string, servers: ResolvedServer[]): string {
  return `${name}\t${servers.map((s) => `${s.address}|${s.port}|${s.weight}`).join(',')}`;
}

// Names and values are checked again on the Lua side: only [A-Za-z0-9_-] names, and
// addr|port|weight triples of plain characters, reach the dict.
export const LUA_BALANCER_SOURCE = `-- Managed by proxy-manager; rewritten at start.
local balancer = require "ngx.balancer"
local dict = ngx.shared.mesh_upstreams
local M = {}
local secret

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function apply_lines(text)
  local n = 0
  for line in text:gmatch("[^\\n]+") do
    local name, servers = line:match("^([%w_%-]+)\\t([%w%.:|,]*)$")
    if name then
      if servers == "" then dict:delete(name) else
        local ok, err = dict:set(name, servers)
        if not ok then ngx.log(ngx.ERR, "mesh balancer: cannot store ", name, ": ", err) end
      end
      n = n + 1
    end
  end
  return n
end

-- In the master, at start and at every reload.
function M.init(dir)
  local s = read_file(dir .. "/control.secret")
  secret = s and s:gsub("%s+", "") or nil
  local snap = read_file(dir .. "/upstreams.snapshot")
  if snap then apply_lines(snap) end
end

-- Per worker: the parsed members, re-parsed only when the dict's value changed.
local cache = {}
local turns = {}

local function members(name)
  if not name or name == "" then return nil end
  local raw = dict:get(name)
  if not raw then return nil end
  local c = cache[name]
  if c and c.raw == raw then return c.list end
  local list = {}
  for addr, port, weight in raw:gmatch("([^|,]+)|(%d+)|(%d+)") do
    for _ = 1, tonumber(weight) do list[#list + 1] = { addr, tonumber(port) } end
  end
  cache[name] = { raw = raw, list = list }
  return list
end

-- Weighted round robin over the members of $mesh_upstream (set by the route's location);
-- a retry (proxy_next_upstream) takes the next member.
function M.balance(name)
  local list = members(name)
  if not list or #list == 0 then
    ngx.log(ngx.ERR, "mesh balancer: no members for ", name)
    return ngx.exit(ngx.ERROR)
  end
  local ctx = ngx.ctx
  local i = ctx.mesh_turn
  if i then
    i = i + 1
  else
    i = (turns[name] or 0) + 1
    turns[name] = i
    if #list > 1 then balancer.set_more_tries(math.min(#list - 1, 3)) end
  end
  ctx.mesh_turn = i
  local peer = list[(i - 1) % #list + 1]
  local ok, err = balancer.set_current_peer(peer[1], peer[2])
  if not ok then
    ngx.log(ngx.ERR, "mesh balancer: ", err)
    return ngx.exit(ngx.ERROR)
  end
end

-- POST /upstreams on the control socket, with the secret: lines as in the snapshot.
function M.control()
  if not secret or secret == "" or ngx.req.get_headers()["x-mesh-secret"] ~= secret then return ngx.exit(403) end
  if ngx.req.get_method() ~= "POST" then return ngx.exit(405) end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if not body then return ngx.exit(400) end
  ngx.say(apply_lines(body))
end

return M
`;

export interface LuaPaths {
  /** Directory holding mesh_balancer.lua. */
  luaDir: string;
  /** Directory holding control.secret and upstreams.snapshot (read by the master). */
  stateDir: string;
  socket: string;
}

async function writeAtomic(path: string, data: string, mode: number): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data, { mode });
  await chmod(tmp, mode);
  await rename(tmp, path);
}

/** Appended lines beyond which the snapshot is rewritten whole (at least this many, or one per upstream). */
const COMPACT_AFTER_LINES = 1000;

/**
 * The balancer's members on this replica: the dict in nginx, the snapshot on disk, and a copy here.
 *
 * A change costs O(changed upstreams), not O(routes): only the changed upstreams' lines are
 * posted to the dict, and appended to the snapshot (the master applies its lines in order, so
 * a later line wins and an empty one deletes). The append happens before the post, so a reload
 * in between (whose master re-applies the snapshot to the dict) never brings back older
 * members. Once the appended lines outnumber the upstreams, the snapshot is rewritten whole in
 * the background (tmp + rename, lines appended meanwhile copied over), off any request's path.
 */
export class DynamicUpstreams {
  private members = new Map<string, ResolvedServer[]>();
  private secret = randomBytes(24).toString('hex');
  /** Snapshot file operations, one at a time and in the order of the member changes. */
  private fileOps: Promise<unknown> = Promise.resolve();
  private appendedLines = 0;
  /** Lines appended while a compaction writes its copy; undefined when none runs. */
  private appendedDuringCompaction: string[] | undefined;
  private compaction: Promise<void> | undefined;
  pushes = 0;
  compactions = 0;

  constructor(readonly paths: LuaPaths) {}

  private get snapshotFile(): string {
    return join(this.paths.stateDir, 'upstreams.snapshot');
  }

  /** The Lua file, a fresh secret and an empty snapshot, before nginx starts. */
  async prepare(): Promise<void> {
    await mkdir(this.paths.luaDir, { recursive: true, mode: 0o755 });
    await writeAtomic(join(this.paths.luaDir, 'mesh_balancer.lua'), LUA_BALANCER_SOURCE, 0o644);
    // Read by the master only (root, or the droplet's user): the workers never open it.
    await writeAtomic(join(this.paths.stateDir, 'control.secret'), this.secret, 0o600);
    await this.serial(() => this.writeSnapshot());
  }

  get(name: string): ResolvedServer[] | undefined {
    return this.members.get(name);
  }

  private snapshotText(): string {
    const text = [...this.members].map(([n, s]) => membershipLine(n, s)).join('\n');
    return text ? `${text}\n` : '';
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.fileOps.then(op, op);
    this.fileOps = run.catch(() => undefined);
    return run;
  }

  private async writeSnapshot(): Promise<void> {
    await writeAtomic(this.snapshotFile, this.snapshotText(), 0o600);
    this.appendedLines = 0;
  }

  /** Append the changed lines (one write, so a line is never half there after a crash of ours). */
  private appendSnapshot(text: string, lines: number): Promise<void> {
    return this.serial(async () => {
      await appendFile(this.snapshotFile, text, { mode: 0o600 });
      this.appendedLines += lines;
      this.appendedDuringCompaction?.push(text);
      if (this.appendedLines > Math.max(COMPACT_AFTER_LINES, this.members.size) && !this.compaction) {
        this.compaction = this.compact().finally(() => {
          this.compaction = undefined;
        });
      }
    });
  }

  /** Rewrite the snapshot whole, without holding up the appends of member changes meanwhile. */
  private async compact(): Promise<void> {
    // Yield first: the append that asked for it returns (and its change is posted) before this starts.
    await new Promise<void>((resolve) => setImmediate(resolve));
    const tmp = `${this.snapshotFile}.${process.pid}.compact`;
    this.appendedDuringCompaction = [];
    try {
      // The members as of now: every change made so far is in them, later ones are collected.
      await writeFile(tmp, this.snapshotText(), { mode: 0o600 });
      await this.serial(async () => {
        const extra = this.appendedDuringCompaction ?? [];
        this.appendedDuringCompaction = undefined;
        if (extra.length > 0) await appendFile(tmp, extra.join(''));
        await chmod(tmp, 0o600);
        await rename(tmp, this.snapshotFile);
        this.appendedLines = extra.reduce((n, t) => n + t.split('\n').length - 1, 0);
        this.compactions++;
      });
    } catch {
      // The appended snapshot is still whole and current; the next append tries again.
      this.appendedDuringCompaction = undefined;
    }
  }

  /** Resolves once every snapshot write started so far (appends and a compaction) is on disk. */
  async flush(): Promise<void> {
    await this.fileOps;
    await this.compaction;
    await this.fileOps;
  }

  /**
   * Set (a list) or remove (null) upstreams: snapshot first (a reload in between loads it),
   * then the running nginx's dict. Returns the previous values, for `apply(undo)`.
   * `live: false` only records them (nginx not started yet: it loads the snapshot).
   */
  async apply(changes: Map<string, ResolvedServer[] | null>, live = true): Promise<Map<string, ResolvedServer[] | null>> {
    const undo = new Map<string, ResolvedServer[] | null>();
    const lines: string[] = [];
    for (const [name, servers] of changes) {
      const current = this.members.get(name);
      if (live && JSON.stringify(current ?? []) === JSON.stringify(servers ?? [])) continue; // nothing to switch
      undo.set(name, current ?? null);
      if (servers && servers.length > 0) this.members.set(name, servers);
      else this.members.delete(name);
      lines.push(membershipLine(name, servers ?? []));
    }
    if (lines.length === 0) return undo;
    const text = `${lines.join('\n')}\n`;
    // Before nginx starts (a batch of every route), one whole write; afterwards only the changed lines.
    if (live) await this.appendSnapshot(text, lines.length);
    else await this.serial(() => this.writeSnapshot());
    if (live) await this.post(text);
    return undo;
  }

  /** Push every member again (after nginx (re)started with an older snapshot, or to repair). */
  async pushAll(): Promise<void> {
    const text = this.snapshotText();
    if (text) await this.post(text);
  }

  private post(body: string): Promise<void> {
    this.pushes++;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          socketPath: this.paths.socket,
          path: '/upstreams',
          method: 'POST',
          headers: { 'x-mesh-secret': this.secret, 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) },
          agent: false,
          timeout: 5000,
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode === 200 ? resolve() : reject(new Error(`nginx control socket answered ${res.statusCode} to an upstream update`)),
          );
        },
      );
      req.on('timeout', () => req.destroy(new Error('nginx control socket did not answer within 5 s')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
