// HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as the AWS CLI and the session-manager-plugin
// honour them (PROTOCOL.md §3.1): agents that open each connection through an HTTP
// CONNECT tunnel unless NO_PROXY lists its host. Used for the data-channel websocket and
// for the SDK's calls (SSM, and STS or SSO for credentials, which may be routed apart).
import { Agent as HttpAgent, request, type AgentOptions } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ExitCode, ProxyError } from '../cli/exit-codes.ts';
import { trustOptions } from './tls-context.ts';

/** The proxy to use for `target`, or undefined for a direct connection. */
export function proxyFor(target: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const secure = target.protocol === 'https:' || target.protocol === 'wss:';
  const raw = proxySetting(secure, env);
  if (!raw || bypassed(target, env.NO_PROXY ?? env.no_proxy ?? '')) return undefined;
  return parseProxy(raw, secure);
}

/**
 * Whether HTTPS_PROXY or HTTP_PROXY is set; throws the usage error a malformed one gets,
 * whatever NO_PROXY says, so that a bad setting is reported before any connection.
 */
export function proxiesConfigured(env: NodeJS.ProcessEnv = process.env): boolean {
  let any = false;
  for (const secure of [true, false]) {
    const raw = proxySetting(secure, env);
    if (raw) {
      parseProxy(raw, secure);
      any = true;
    }
  }
  return any;
}

function proxySetting(secure: boolean, env: NodeJS.ProcessEnv): string | undefined {
  return (secure ? (env.HTTPS_PROXY ?? env.https_proxy) : (env.HTTP_PROXY ?? env.http_proxy)) || undefined;
}

function parseProxy(raw: string, secure: boolean): URL {
  let proxy: URL;
  try {
    proxy = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new ProxyError(ExitCode.Usage, `${secure ? 'HTTPS_PROXY' : 'HTTP_PROXY'} is not a URL; set it like http://proxy.example.com:3128`, 'BadProxyUrl');
  }
  if (proxy.protocol !== 'http:') {
    throw new ProxyError(ExitCode.Usage, `only http:// proxies are supported (got ${proxy.protocol}//${proxy.host}); set HTTPS_PROXY to the proxy's http:// address`, 'BadProxyUrl');
  }
  return proxy;
}

function defaultPort(u: URL): string {
  return u.port || (u.protocol === 'https:' || u.protocol === 'wss:' ? '443' : '80');
}

/** NO_PROXY: comma or space separated hosts, .suffixes or *, optionally with :port. */
function bypassed(target: URL, noProxy: string): boolean {
  const host = target.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = defaultPort(target);
  for (const item of noProxy.split(/[\s,]+/)) {
    if (item === '') continue;
    if (item === '*') return true;
    const m = /^(.*?)(?::(\d+))?$/.exec(item.toLowerCase())!;
    const entry = m[1].replace(/^\[|\]$/g, '').replace(/^\*?\./, '.');
    if (m[2] && m[2] !== port) continue;
    if (entry.startsWith('.') ? host.endsWith(entry) || host === entry.slice(1) : host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

export type Callback = ((err: Error | null, stream: Duplex) => void) | undefined;

/** A tunnel failure, coded so that callers treat it as the network error it is. */
function tunnelError(message: string): Error {
  return Object.assign(new Error(message), { code: 'EPROXYTUNNEL' });
}

/** Opens a CONNECT tunnel to host:port through `proxy`. */
function tunnel(proxy: URL, host: string, port: number, cb: (err: Error | null, socket?: Socket) => void): void {
  const headers: Record<string, string> = { Host: `${host}:${port}` };
  if (proxy.username) {
    const user = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
    headers['Proxy-Authorization'] = `Basic ${Buffer.from(user).toString('base64')}`;
  }
  const req = request({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: Number(defaultPort(proxy)), method: 'CONNECT', path: `${host}:${port}`, headers, agent: false });
  req.once('connect', (res, socket) => {
    if (res.statusCode !== 200) {
      socket.destroy();
      cb(tunnelError(`the proxy ${proxy.host} answered CONNECT ${host}:${port} with HTTP ${res.statusCode}`));
      return;
    }
    cb(null, socket);
  });
  req.once('error', (err) => cb(tunnelError(`cannot reach the proxy ${proxy.host}: ${err.message}`)));
  req.end();
}

/** What node's agents pass to createConnection, as far as it matters here. */
export type ConnectArgs = ConnectionOptions & { host?: string | null; port?: number | string | null };

/** Called with the host:port and the proxy of each connection that goes through one. */
export type TunnelListener = (target: string, proxy: URL) => void;

/** The host and port a node agent's connection options name, defaults filled in. */
function hostAndPort(secure: boolean, options: ConnectArgs): { host: string; port: number } {
  return { host: options.host || 'localhost', port: Number(options.port) || (secure ? 443 : 80) };
}

/** The URL (scheme, host and port) a node agent's connection leads to; undefined when no URL can hold its host. */
export function connectionTarget(secure: boolean, options: ConnectArgs): URL | undefined {
  const { host, port } = hostAndPort(secure, options);
  try {
    return new URL(`${secure ? 'https' : 'http'}://${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`);
  } catch {
    return undefined;
  }
}

/**
 * Where a node agent's connection goes through a proxy: the proxy and the host and port
 * to ask it for (told to `onTunnel`); undefined for a direct connection, also for a host
 * no URL can hold (the direct connection reports it).
 */
function routeOf(secure: boolean, options: ConnectArgs, env: NodeJS.ProcessEnv, onTunnel: TunnelListener | undefined): { proxy: URL; host: string; port: number } | undefined {
  const target = connectionTarget(secure, options);
  const proxy = target && proxyFor(target, env);
  if (!proxy) return undefined;
  const { host, port } = hostAndPort(secure, options);
  onTunnel?.(`${host}:${port}`, proxy);
  return { proxy, host, port };
}

type CreateConnection = (options: ConnectArgs, cb?: Callback) => Duplex | undefined;

/**
 * Node's http agent, except that each connection's route is decided for its own host:
 * through the proxy in HTTP_PROXY unless NO_PROXY lists the host, else direct.
 */
export class RoutingHttpAgent extends HttpAgent {
  constructor(
    options?: AgentOptions,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly onTunnel?: TunnelListener,
  ) {
    super(options);
  }
  // Through a proxy the connection is made asynchronously: node's agents wait for the callback when this returns nothing.
  override createConnection(options: ConnectArgs, cb?: Callback): Duplex | undefined {
    const route = routeOf(false, options, this.env, this.onTunnel);
    if (!route) return (super.createConnection as CreateConnection)(options, cb);
    tunnel(route.proxy, route.host, route.port, (err, socket) => cb?.(err, socket as Duplex));
    return undefined;
  }
}

/** The same for https:// and wss://: HTTPS_PROXY, with TLS (verified as usual) inside the tunnel. */
export class RoutingHttpsAgent extends HttpsAgent {
  constructor(
    options?: ConnectionOptions & AgentOptions,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly onTunnel?: TunnelListener,
  ) {
    super(options);
  }
  override createConnection(args: ConnectArgs, cb?: Callback): Duplex | undefined {
    // A CA bundle's context (tls-context.ts) is made by the first connection that needs it,
    // not with the agent: a connection opened ahead starts its TCP handshake before it.
    const options = typeof args.ca === 'string' && args.secureContext === undefined ? { ...args, ...trustOptions(args.ca) } : args;
    const route = routeOf(true, options, this.env, this.onTunnel);
    if (!route) return (super.createConnection as CreateConnection)(options, cb);
    const { host } = route;
    tunnel(route.proxy, host, route.port, (err, socket) => {
      if (err || !socket) return cb?.(err ?? new Error('no socket from the proxy'), undefined as unknown as Duplex);
      const tls = tlsConnect({ ...options, host, port: undefined, socket, servername: options.servername ?? host });
      tls.once('secureConnect', () => cb?.(null, tls));
      tls.once('error', (e) => cb?.(e, tls));
    });
    return undefined;
  }
}

/** The agent for `target` when a proxy applies to it; `options` (e.g. a CA bundle) pass through to TLS. */
export function proxyAgentFor(target: URL, options: AgentOptions & ConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env): HttpAgent | undefined {
  if (!proxyFor(target, env)) return undefined;
  const secure = target.protocol === 'https:' || target.protocol === 'wss:';
  return secure ? new RoutingHttpsAgent(options, env) : new RoutingHttpAgent(options, env);
}
