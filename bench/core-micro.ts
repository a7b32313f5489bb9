// CPU cost of the protocol core alone: client and agent channels joined in memory.
import { ReliableChannel } from '../src/channel/channel.ts';

const MiB = 1024 * 1024;
const total = Number(process.argv[2] ?? 64) * MiB;
const client = new ReliableChannel({ role: 'client', now: 0 });
const agent = new ReliableChannel({ role: 'agent', now: 0 });
agent.startHandshake(0);
let now = 0;
const pass = (a: ReliableChannel, b: ReliableChannel) => {
  const o = a.drain();
  for (const f of o.transmit) b.receive(f, now);
  return o;
};
for (let i = 0; i < 4; i++) {
  pass(agent, client);
  pass(client, agent);
}
const chunk = Buffer.alloc(64 * 1024, 1);
let received = 0;
const t0 = process.cpuUsage();
const w0 = performance.now();
let sent = 0;
while (received < total) {
  now += 0.01;
  while (sent < total && client.write(chunk, now)) sent += chunk.length;
  const o = pass(client, agent);
  const a = agent.drain();
  for (const d of a.deliver) received += d.length;
  for (const f of a.transmit) client.receive(f, now);
  void o;
  client.tick(now);
}
const c = process.cpuUsage(t0);
const cpu = (c.user + c.system) / 1e6;
console.log(`${total / MiB} MiB client->agent: ${(performance.now() - w0).toFixed(0)} ms wall, ${cpu.toFixed(2)} s CPU (both ends), ${((cpu * 100 * MiB) / total).toFixed(2)} s per 100 MiB`);
