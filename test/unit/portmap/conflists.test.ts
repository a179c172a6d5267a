import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/portmap/config.js';

const dir = join(import.meta.dirname, '..', '..', '..', 'conflist');

describe('example conflists', () => {
  it.each(readdirSync(dir).filter((f) => f.endsWith('.conflist')))('%s chains a valid portmap with the portMappings capability', (file) => {
    const list = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
    const portmap = list.plugins.find((p) => p.type === 'portmap');
    expect(portmap).toBeDefined();
    expect(portmap?.capabilities).toEqual({ portMappings: true });
    const config = parseConfig({ ...portmap, cniVersion: list.cniVersion, name: list.name });
    expect(config.name).toBe(list.name);
  });
});
