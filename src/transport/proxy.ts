// HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as the AWS CLI and the session-manager-plugin
// honour them (PROTOCOL.md §3.1): an agent that opens each connection through an
// HTTP CONNECT tunnel. Used for the data-channel websocket and the SSM API calls.
import { Agent as HttpAgent, request, type AgentOptions } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ExitCode, ProxyError } from '../cli/exit-codes.ts';

/** The proxy to use for `target`, or undefined for a direct connection. */
export function proxyFor(target: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const secure = target.protocol === 'https:' || target.protocol === 'wss:';
  const raw = secure ? (env.HTTPS_PROXY ?? env.https_proxy) : (env.HTTP_PROXY ?? env.http_proxy);
  if (!raw) return undefined;
  if (bypassed(target, env.NO_PROXY ?? env.no_proxy ?? '')) return undefined;
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

type Callback = ((err: Error | null, stream: Duplex) => void) | undefined;

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

/** An agent for plain http:// and ws:// targets through the proxy. */
class PlainTunnelAgent extends HttpAgent {
  constructor(
    private readonly proxy: URL,
    options?: AgentOptions,
  ) {
    super(options);
  }
  // Asynchronous creation: Node's agents wait for the callback when this returns nothing.
  override createConnection(options: { host?: string | null; port?: number | string | null }, cb?: Callback): undefined {
    tunnel(this.proxy, options.host ?? 'localhost', Number(options.port ?? 80), (err, socket) => cb?.(err, socket as Duplex));
    return undefined;
  }
}

/** An agent for https:// and wss:// targets: TLS (verified as usual) inside the tunnel. */
class TlsTunnelAgent extends HttpsAgent {
  constructor(
    private readonly proxy: URL,
    options?: ConnectionOptions & AgentOptions,
  ) {
    super(options);
  }
  override createConnection(options: ConnectionOptions & { host?: string | null; port?: number | string | null }, cb?: Callback): undefined {
    const host = options.host ?? 'localhost';
    tunnel(this.proxy, host, Number(options.port ?? 443), (err, socket) => {
      if (err || !socket) return cb?.(err ?? new Error('no socket from the proxy'), undefined as unknown as Duplex);
      const tls = tlsConnect({ ...options, host, port: undefined, socket, servername: options.servername ?? host });
      tls.once('secureConnect', () => cb?.(null, tls));
      tls.once('error', (e) => cb?.(e, tls));
    });
    return undefined;
  }
}

/** The agent for `target` when a proxy applies; `options` (e.g. a CA bundle) pass through to TLS. */
export function proxyAgentFor(target: URL, options: AgentOptions & ConnectionOptions = {}, env: NodeJS.ProcessEnv = process.env): HttpAgent | undefined {
  const proxy = proxyFor(target, env);
  if (!proxy) return undefined;
  const secure = target.protocol === 'https:' || target.protocol === 'wss:';
  return secure ? new TlsTunnelAgent(proxy, options) : new PlainTunnelAgent(proxy, options);
}
