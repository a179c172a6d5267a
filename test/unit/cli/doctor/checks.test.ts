/** The check registry: a healthy node has no findings. */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import { facts, ours } from './fixtures.js';

describe('doctor: checks', () => {
  it('a node with one hostPort and nothing else is healthy', () => {
    expect(diagnose(facts({}, { rows: [ours()] }))).toEqual([]);
  });
});
