// The simulator's two HTTP servers (the SSM API, the gateway): plain or TLS, and how long
// ago the connection a request came on was accepted (for a long path's set-up delay).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';

export function simHttpServer(handler: (req: IncomingMessage, res: ServerResponse) => void, tls: { key: string; cert: string } | undefined): { server: Server; ageOf: (socket: object) => number } {
  const server = tls ? createHttpsServer(tls, handler) : createServer(handler);
  const acceptedAt = new WeakMap<object, number>();
  // Over TLS requests come on the TLS socket, made once its handshake is done: the age
  // counts from there.
  server.on(tls ? 'secureConnection' : 'connection', (socket) => acceptedAt.set(socket, performance.now()));
  return { server, ageOf: (socket) => performance.now() - (acceptedAt.get(socket) ?? performance.now()) };
}
