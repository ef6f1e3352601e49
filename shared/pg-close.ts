/**
 * Closing a pg client without ever hanging: `end()` on a client whose connection already broke can wait
 * forever, so it is bounded. Errors are ignored: the point is to let go of the connection.
 */
export interface Endable {
  end(): Promise<void>;
}

export async function closeQuietly(client: Endable | null | undefined, timeoutMs = 2000): Promise<void> {
  if (!client) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.end().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    }),
  ]);
  if (timer) clearTimeout(timer);
}
