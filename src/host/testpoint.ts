import { appendFileSync } from 'node:fs';

/**
 * Test hook for the crash tests, a no-op unless PORTMAP_TEST_PAUSE_AT is set: when it names this point
 * (a comma-separated list), the plugin appends "<point> <pid>" to PORTMAP_TEST_MARKER and sleeps
 * PORTMAP_TEST_PAUSE_MS (default 60 s), so that a test can SIGKILL it exactly there.
 */
export async function testpoint(name: string): Promise<void> {
  const at = process.env.PORTMAP_TEST_PAUSE_AT;
  if (!at || !at.split(',').includes(name)) return;
  const marker = process.env.PORTMAP_TEST_MARKER;
  if (marker) appendFileSync(marker, `${name} ${process.pid}\n`);
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.PORTMAP_TEST_PAUSE_MS ?? 60_000)));
}
