import { acmeChallengeLocation, safe, type ListenSettings } from './render.js';

export interface MainConfInput {
  prefix: string;
  pidFile: string;
  errorLog: string;
  sitesEnabled: string;
  webroot: string;
  listen: ListenSettings;
  /** `daemon off` so the droplet supervises the master as its child. */
  foreground: boolean;
}

function listenDirective(address: string, port: number, extra: string): string {
  const host =
    address === '*' ? '' : address.includes(':') ? `[${safe(address, 'listen address')}]:` : `${safe(address, 'listen address')}:`;
  return `listen ${host}${safe(port, 'port')} ${extra};`;
}

/** The nginx.conf the droplet owns: every path inside the prefix, routes included from sites-enabled. */
export function renderMainConf(c: MainConfInput): string {
  const p = safe(c.prefix, 'nginx prefix');
  return `# Managed by proxy-manager; regenerated at start.
${c.foreground ? 'daemon off;\n' : ''}worker_processes auto;
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
