import { acmeChallengeLocation, BALANCER_UPSTREAM, safe, type ListenSettings } from './render.js';

export interface MainConfInput {
  prefix: string;
  pidFile: string;
  errorLog: string;
  sitesEnabled: string;
  webroot: string;
  listen: ListenSettings;
  /** `daemon off` so the droplet supervises the master as its child. */
  foreground: boolean;
  /** Present when upstream members are switched by the Lua balancer (see nginx/lua-balancer.ts). */
  lua?: LuaSettings;
  /**
   * The copy `nginx -t` checks before a structural change: the same config without the Lua
   * module, its shared upstream a plain stub. Debian 12's lua module (0.10.23) builds an OpenSSL
   * context for every `server` and `location` while parsing (fixed upstream in 0.10.26), ~0.2 ms
   * each; route files hold no Lua, so this copy tests every route byte for the no-Lua price.
   */
  testOnly?: boolean;
}

export interface LuaSettings {
  modulesDir: string;
  luaDir: string;
  stateDir: string;
  socket: string;
}

/** The shared upstream as `nginx -t` sees it in the test copy: same name, no Lua. */
const balancerStub = `    upstream ${BALANCER_UPSTREAM} {
        server 0.0.0.1:1;
    }
`;

/** The main-context and http-context lines of the Lua balancer (also used alone to probe the module). */
export function luaDirectives(l: LuaSettings): { main: string; http: string } {
  const m = safe(l.modulesDir, 'modules dir');
  return {
    main: `load_module ${m}/ndk_http_module.so;\nload_module ${m}/ngx_http_lua_module.so;\n`,
    http: `    lua_package_path "${safe(l.luaDir, 'lua dir')}/?.lua;;";
    # Upstream members, switched without a reload (kept across reloads: same name and size). 4m holds ~10,000 upstreams; every nginx -t pays for its size.
    lua_shared_dict mesh_upstreams 4m;
    init_by_lua_block { require("mesh_balancer").init("${safe(l.stateDir, 'lua state dir')}") }

    # One upstream for every round-robin route, as ingress-nginx does: one Lua chunk, the route's
    # members chosen by the name its location sets in $mesh_upstream. 0.0.0.1:1 is never used.
    upstream ${BALANCER_UPSTREAM} {
        server 0.0.0.1:1;
        balancer_by_lua_block { require("mesh_balancer").balance(ngx.var.mesh_upstream) }
        keepalive 320;
    }

    # Control socket for member updates: inside the prefix, and each request carries the secret.
    server {
        listen unix:${safe(l.socket, 'control socket')};
        access_log off;
        client_max_body_size 32m;
        client_body_buffer_size 32m;
        location = /upstreams {
            content_by_lua_block { require("mesh_balancer").control() }
        }
        location / {
            return 404;
        }
    }
`,
  };
}

/** A minimal config that only loads the Lua balancer: `nginx -t` on it says whether the module works here. */
export function renderLuaProbeConf(c: Pick<MainConfInput, 'pidFile' | 'errorLog'> & { lua: LuaSettings }): string {
  const lua = luaDirectives(c.lua);
  return `${lua.main}pid ${safe(c.pidFile, 'pid path')};
error_log ${safe(c.errorLog, 'error log path')} notice;
events {
    worker_connections 16;
}
http {
${lua.http}}
`;
}

function listenDirective(address: string, port: number, extra: string): string {
  const host =
    address === '*' ? '' : address.includes(':') ? `[${safe(address, 'listen address')}]:` : `${safe(address, 'listen address')}:`;
  return `listen ${host}${safe(port, 'port')} ${extra};`;
}

/** The nginx.conf the droplet owns: every path inside the prefix, routes included from sites-enabled. */
export function renderMainConf(c: MainConfInput): string {
  const p = safe(c.prefix, 'nginx prefix');
  const lua = c.lua && !c.testOnly ? luaDirectives(c.lua) : undefined;
  const luaHttp = c.lua ? (lua?.http ?? balancerStub) : '';
  return `# Managed by proxy-manager; regenerated at start.
${lua?.main ?? ''}${c.foreground ? 'daemon off;\n' : ''}worker_processes auto;
pid ${safe(c.pidFile, 'pid path')};
# notice level: the reload check reads "start worker processes" / "[emerg]" from here.
error_log ${safe(c.errorLog, 'error log path')} notice;

events {
    worker_connections 4096;
}

http {
    client_body_temp_path ${p}/temp/client_body;
    proxy_temp_path ${p}/temp/proxy;
    fastcgi_temp_path ${p}/temp/fastcgi;
    uwsgi_temp_path ${p}/temp/uwsgi;
    scgi_temp_path ${p}/temp/scgi;

    access_log off;
    default_type application/octet-stream;
    server_tokens off;
    sendfile on;
    keepalive_timeout 65;
    # Room for thousands of routes without "could not build server_names_hash".
    server_names_hash_max_size 65536;
    server_names_hash_bucket_size 128;

    # A client's own X-Request-Id is kept when it is a plain token; otherwise nginx makes one.
    map $http_x_request_id $mesh_request_id {
        default $request_id;
        "~^[A-Za-z0-9._-]{1,128}$" $http_x_request_id;
    }
    # One JSON object per line (escape=json quotes whatever a client sent); routes opt out with access_log: false.
    log_format mesh_json escape=json '{"time":"$time_iso8601","request_id":"$mesh_request_id","domain":"$server_name",'
        '"host":"$host","remote_addr":"$remote_addr","method":"$request_method","uri":"$request_uri",'
        '"status":$status,"bytes_sent":$body_bytes_sent,"request_length":$request_length,"request_time":$request_time,'
        '"upstream_addr":"$upstream_addr","upstream_status":"$upstream_status",'
        '"upstream_response_time":"$upstream_response_time","user_agent":"$http_user_agent","scheme":"$scheme"}';

    map $http_upgrade $connection_upgrade {
        default upgrade;
        '' '';
    }
${luaHttp}
    # Requests for a host no route serves.
    server {
        ${listenDirective(c.listen.address, c.listen.httpPort, 'default_server')}
        server_name _;
${acmeChallengeLocation(c.webroot, '        ')}
        location / {
            return 404;
        }
    }
    server {
        ${listenDirective(c.listen.address, c.listen.httpsPort, 'ssl default_server')}
        ssl_reject_handshake on;
    }

    include ${safe(c.sitesEnabled, 'sites-enabled path')}/*.conf;
}
`;
}
