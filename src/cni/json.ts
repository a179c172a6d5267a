/** A decoded JSON object (not an array, not null): what configurations, results and cache entries are. */
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
