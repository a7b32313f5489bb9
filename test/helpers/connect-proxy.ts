// A minimal HTTP CONNECT proxy on 127.0.0.1 that records what it was asked to tunnel.
// Every tunnel leads to 127.0.0.1 at the port asked for, so tests can name hosts that
// do not resolve (a public endpoint's name) and still reach a local server through it.
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface ConnectProxy {
  port: number;
  url: string;
  /** host:port of every CONNECT, in order. */
  tunnels: string[];
  /** The Proxy-Authorization header of every CONNECT ('' when absent). */
  auth: string[];
  /** While true, every CONNECT is answered 403. */
  refuse: boolean;
  close(): Promise<void>;
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  const server: Server = createServer((_req, res) => res.writeHead(405).end());
  const sockets = new Set<Socket>();
  const proxy: ConnectProxy = {
    port: 0,
    url: '',
    tunnels: [],
    auth: [],
    refuse: false,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  server.on('connect', (req, client: Socket, head: Buffer) => {
    proxy.tunnels.push(req.url ?? '');
    proxy.auth.push(String(req.headers['proxy-authorization'] ?? ''));
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    if (proxy.refuse) {
      client.end('HTTP/1.1 403 Forbidden\r\n\r\n');
      return;
    }
    const port = Number((req.url ?? '').split(':').pop());
    const upstream = connect(port, '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.once('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as { port: number }).port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  return proxy;
}
