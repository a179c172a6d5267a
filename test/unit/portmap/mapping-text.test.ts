/** Mappings as one short word for the call's log line. */
import { describe, expect, it } from 'vitest';
import type { PortMapping } from '../../../src/portmap/config.js';
import { mappingText } from '../../../src/portmap/mapping-text.js';

const m = (hostPort: number, containerPort: number, protocol: PortMapping['protocol'] = 'tcp', hostIP?: string): PortMapping =>
  ({ hostPort, containerPort, protocol, ...(hostIP ? { hostIP } : {}) });

describe('mappingText', () => {
  it('lists a short list as host->container/protocol, a host address in brackets', () => {
    expect(mappingText([m(8080, 80), m(5353, 53, 'udp'), m(9000, 9000, 'tcp', '192.0.2.10'), m(443, 8443, 'tcp', '2001:db8::1')]))
      .toEqual({ text: '8080->80/tcp,5353->53/udp,[192.0.2.10]:9000->9000/tcp,[2001:db8::1]:443->8443/tcp', count: 4, summarised: false });
  });

  it('a range publish is one range; ports that step together form one (remapped or not), anything else breaks it', () => {
    const range = Array.from({ length: 16_384 }, (_, i) => m(40_000 + i, 40_000 + i, 'udp'));
    expect(mappingText(range)).toEqual({ text: '40000-56383->40000-56383/udp', count: 16_384, summarised: true });
    const mixed = [m(8000, 9000), m(8001, 9001), m(8002, 9002), m(8003, 9003, 'udp'), m(8004, 9004, 'udp'), m(8005, 8005)];
    expect(mappingText(mixed).text).toBe('8000-8002->9000-9002/tcp,8003-8004->9003-9004/udp,8005->8005/tcp');
  });

  it('after 8 items, counts the rest', () => {
    const many = Array.from({ length: 20 }, (_, i) => m(1000 + 2 * i, 80));
    const t = mappingText(many);
    expect(t.text.split(',')).toHaveLength(9);
    expect(t.text.endsWith(',1014->80/tcp,...+12')).toBe(true);
    expect(t).toMatchObject({ count: 20, summarised: true });
  });

  it('65,535 remapped ports: bounded text, quickly', () => {
    const all = Array.from({ length: 65_535 }, (_, i) => m(i + 1, 65_535 - i));
    const t0 = performance.now();
    const t = mappingText(all);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(t.text.length).toBeLessThan(200);
    expect(t.text.endsWith(',...+65527')).toBe(true);
  });
});
