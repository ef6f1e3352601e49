/**
 * The local HTTP endpoint of a running server or agent (loopback by default): GET /status gives the
 * status JSON (read by `pgferry status`), GET /metrics the Prometheus text when the process has metrics.
 */
import * as http from 'node:http';

export interface StatusEndpoint {
  port: number;
  close(): Promise<void>;
}

export interface MetricsText {
  contentType: string;
  body: string;
}

export async function serveStatus(
  host: string,
  port: number,
  status: () => Promise<unknown> | unknown,
  metrics?: () => Promise<MetricsText>,
): Promise<StatusEndpoint> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/metrics' && metrics) {
      metrics()
        .then((m) => {
          res.writeHead(200, { 'content-type': m.contentType });
          res.end(m.body);
        })
        .catch((e: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`# metrics failed: ${String(e)}\n`);
        });
      return;
    }
    if (req.method === 'GET' && req.url === '/status') {
      Promise.resolve()
        .then(status)
        .then((body) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(body));
        })
        .catch((e: unknown) => {
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: String(e) }));
        });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export async function fetchStatus(host: string, port: number, timeoutMs = 3000): Promise<unknown> {
  const target = host === '0.0.0.0' ? '127.0.0.1' : host;
  const res = await fetch(`http://${target.includes(':') ? `[${target}]` : target}:${port}/status`, {
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`status endpoint answered ${res.status}`);
  return res.json();
}
