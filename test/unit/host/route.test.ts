import { describe, expect, it } from 'vitest';
import { routeDeviceFromProc } from '../../../src/host/route.js';

const PROC = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
up0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
up0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cni0\t0000F40A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
veth1\t0500F40A\t00000000\t0001\t0\t0\t0\tFFFFFFFF\t0\t0\t0
down0\t0000F50A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;

describe('routeDeviceFromProc', () => {
  it('picks the most specific up route of /proc/net/route', () => {
    expect(routeDeviceFromProc(PROC, '10.244.0.7')).toBe('cni0');
    expect(routeDeviceFromProc(PROC, '10.244.0.5')).toBe('veth1');
    expect(routeDeviceFromProc(PROC, '192.0.2.9')).toBe('up0');
    // the default route covers everything else; a route that is not up is ignored
    expect(routeDeviceFromProc(PROC, '10.245.0.1')).toBe('up0');
    expect(routeDeviceFromProc(PROC.split('\n').filter((l) => !l.includes('010200C0')).join('\n'), '10.245.0.1')).toBeUndefined();
  });
});
